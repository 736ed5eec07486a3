// Package store serves the Thanos StoreAPI (thanos.Store: Series, LabelNames, LabelValues) and the
// Info service (thanos.info.Info) over an ingester's tenant TSDBs, so that Thanos Query reads the data
// Weir received before it is shipped as blocks. Wire compatibility comes from storepb, generated
// from .proto files that keep Thanos' package, message and field numbers (storepb/generate.sh).
package store
