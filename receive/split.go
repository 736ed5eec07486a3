package receive

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/prompb"

	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// Splitting a request by tenant (--receive.split-tenant-label-name, as in Thanos Receive): a series
// that carries the label belongs to the tenant it names and is stored without it; the other series
// belong to the request's tenant. One sender (a Prometheus agent of a shared cluster) can so write
// several tenants in one request. The request's own limits (size, series, samples, rate) are those of
// its tenant, as in Thanos; each tenant's series limits apply where its series are stored.

// tenantShare is the series of one tenant of a split request.
type tenantShare struct {
	tenant string
	series []prompb.TimeSeries
	index  []int // index[i]: the index of series[i] among the request's validated series
}

// splitTenants partitions series by the value of label, removing it. It returns nil when no series
// carries the label: the request is its tenant's alone and keeps the router's fast path. A value that
// is not a valid tenant ID refuses the request (400); with authenticated senders (bound is set), a
// value naming another tenant than the sender's refuses it too (403), as a header would.
func splitTenants(series []prompb.TimeSeries, label, requestTenant string, bound bool) ([]tenantShare, error) {
	first := -1
	for i := range series {
		if labelIndex(series[i].Labels, label) >= 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, nil
	}
	var shares []tenantShare
	at := map[string]int{}
	for i := range series {
		ts := &series[i]
		id := requestTenant
		if j := labelIndex(ts.Labels, label); j >= 0 {
			id = ts.Labels[j].Value
			if err := tenant.ValidateID(id); err != nil {
				return nil, fmt.Errorf("label %s of series %d: %w", label, i, err)
			}
			if bound && id != requestTenant {
				return nil, fmt.Errorf("label %s of series %d names tenant %q: %w", label, i, id, tenant.ErrOtherTenant)
			}
			// In place, before the request is released (decode.go's aliasing rules allow shortening).
			ts.Labels = append(ts.Labels[:j], ts.Labels[j+1:]...)
		}
		k, ok := at[id]
		if !ok {
			k = len(shares)
			at[id] = k
			shares = append(shares, tenantShare{tenant: id})
		}
		shares[k].series = append(shares[k].series, *ts)
		shares[k].index = append(shares[k].index, i)
	}
	return shares, nil
}

// extras returns the share's series' entries of a request's extras (nil: none).
func (s tenantShare) extras(all []write.SeriesExtra) []write.SeriesExtra {
	if all == nil {
		return nil
	}
	ex := make([]write.SeriesExtra, len(s.index))
	for i, idx := range s.index {
		ex[i] = all[idx]
	}
	return ex
}

func labelIndex(ls []prompb.Label, name string) int {
	for j := range ls {
		if ls[j].Name == name {
			return j
		}
	}
	return -1
}

// writeSplit writes each tenant's share of a split request and answers it: the first storage error
// answers the request (the sender retries it whole; what was written is accepted again as
// duplicates), else the rejections of every share, by their index in the request as sent.
func (h *Handler) writeSplit(ctx context.Context, w http.ResponseWriter, requestTenant string, shares []tenantShare, v *validation, validated []prompb.TimeSeries, extras []write.SeriesExtra) error {
	total, failed, err := h.writeShares(ctx, shares, extras, validated)
	if err != nil {
		h.metrics.storageErrors.WithLabelValues(failed, className(ClassOf(err))).Inc()
		h.logger.Error("write failed", "tenant", failed, "err", err)
		h.answerWritten(w, total.Appended, err)
		return err
	}
	for i := range total.Rejected {
		total.Rejected[i].Series = v.originalIndex(total.Rejected[i].Series)
	}
	h.record(requestTenant, write.Stats{}, v.rejected)
	h.answerWritten(w, total.Appended, partialError(total, v.rejected))
	return nil
}

// writeShares writes each tenant's share of a split request with its extras and records each
// tenant's stats. The first storage error ends it: failed names that share's tenant, and the stats
// count what was written up to it (that share's points written anyway included). The rejections
// index the validated series, the first few errors naming their tenant and series.
func (h *Handler) writeShares(ctx context.Context, shares []tenantShare, extras []write.SeriesExtra, validated []prompb.TimeSeries) (total write.Stats, failed string, err error) {
	for _, s := range shares {
		stats, err := h.storage.Write(ctx, Batch{Tenant: s.tenant, Series: s.series, Extras: s.extras(extras)})
		if err != nil {
			for k, n := range stats.Appended { // written anyway (a quorum for some series)
				total.Appended[k] += n
			}
			return total, s.tenant, err
		}
		for i := range stats.Rejected {
			rj := &stats.Rejected[i]
			idx := s.index[rj.Series]
			if len(total.Rejected)+i < maxExamples {
				rj.Err = fmt.Errorf("tenant %s: %s: %w", s.tenant, labelsString(validated[idx].Labels), rj.Err)
			}
			rj.Series = idx
		}
		h.record(s.tenant, stats, nil)
		for k, n := range stats.Appended {
			total.Appended[k] += n
		}
		total.Rejected = append(total.Rejected, stats.Rejected...)
	}
	return total, "", nil
}
