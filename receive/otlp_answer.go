package receive

import (
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Answers of the OTLP handler, as the OTLP/HTTP specification says: 200 with an
// ExportMetricsServiceResponse, whose partial_success counts the points rejected for good and says
// why; or an error status with a google.rpc.Status body. Both are encoded as the request was
// (protobuf or JSON).

// refuse counts and answers a request refused with err.
func (o *OTLPHandler) refuse(w http.ResponseWriter, f otlpFormat, reason string, err error) {
	if reason != "" {
		o.h.metrics.failed.WithLabelValues(reason).Inc()
	}
	o.h.logger.Debug("OTLP request refused", "reason", reason, "err", err)
	answerHeaders(w.Header(), err)
	code := otlpStatusCode(err)
	if code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(int(defaultRetryAfter.Seconds())))
	}
	o.answerError(w, f, code, err)
}

// answerError writes a google.rpc.Status answer with the HTTP status code.
func (o *OTLPHandler) answerError(w http.ResponseWriter, f otlpFormat, code int, err error) {
	st := &spb.Status{Code: int32(otlpRPCCode(code)), Message: err.Error()}
	var body []byte
	var merr error
	if f == otlpFormatJSON {
		body, merr = protojson.Marshal(st)
	} else {
		body, merr = proto.Marshal(st)
	}
	if merr != nil { // cannot happen for a Status; answer the code anyway
		body = nil
	}
	w.Header().Set("Content-Type", f.contentType())
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// answerOK writes a 200 with the ExportMetricsServiceResponse: partial_success when points were
// rejected or something deserves a warning (rejected_data_points 0, as the specification allows).
func (o *OTLPHandler) answerOK(w http.ResponseWriter, f otlpFormat, res otlpResult) {
	resp := pmetricotlp.NewExportResponse()
	var msgs []string
	for _, m := range res.messages {
		if m != "" {
			msgs = append(msgs, m)
		}
	}
	if res.points > 0 || len(msgs) > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(int64(res.points))
		ps.SetErrorMessage(strings.Join(msgs, "\n"))
	}
	var body []byte
	var err error
	if f == otlpFormatJSON {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil {
		o.answerError(w, f, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", f.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
