package store

import (
	"time"

	"github.com/weir-metrics/weir/store/storepb"
)

// metadataService serves Thanos' Metadata API (thanos.Metadata): the metric metadata that this
// node's tenants' Remote Write 2.0 and OTLP writes carried, so that Thanos Query's /api/v1/metadata
// lists it. Metadata is not per tenant in that API: every tenant's is merged, as Thanos Receive
// would list the metadata of every tenant it holds.
type metadataService struct {
	storepb.UnimplementedMetadataServer
	s *Server
}

func (x metadataService) MetricMetadata(r *storepb.MetricMetadataRequest, srv storepb.Metadata_MetricMetadataServer) error {
	return x.s.MetricMetadata(r, srv)
}

// MetricMetadata sends, in one message, the metadata of r.Metric (every family when empty), of at
// most r.Limit families (0 or less: all; 0 is proto3's unset).
func (s *Server) MetricMetadata(r *storepb.MetricMetadataRequest, srv storepb.Metadata_MetricMetadataServer) (err error) {
	defer func(start time.Time) { s.metrics.observe("MetricMetadata", start, err) }(time.Now())
	md := s.tenants.Metadata("", r.Metric, int(max(r.Limit, 0)))
	out := &storepb.MetricMetadata{Metadata: make(map[string]*storepb.MetricMetadataEntry, len(md))}
	for name, mds := range md {
		e := &storepb.MetricMetadataEntry{Metas: make([]*storepb.Meta, 0, len(mds))}
		for _, m := range mds {
			e.Metas = append(e.Metas, &storepb.Meta{Type: string(m.Type), Help: m.Help, Unit: m.Unit})
		}
		out.Metadata[name] = e
	}
	return srv.Send(&storepb.MetricMetadataResponse{Result: &storepb.MetricMetadataResponse_Metadata{Metadata: out}})
}
