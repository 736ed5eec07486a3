// Package receive is the HTTP edge of Weir: it decodes Remote Write 1.0 and 2.0 requests and OTLP
// metrics, validates them, hands the valid series to storage, and answers with a status code the
// sender acts on correctly.
//
// Start with Handler. Decode reads a request within DecodeLimits; Limits.validate normalises and checks
// the series; Storage writes them; StatusCode maps any error to its answer.
//
// # Status codes
//
// Senders retry 5xx and 429 and drop the batch on any other 4xx, so a wrong code either loses data or
// makes a sender retry forever. The table is the contract:
//
//	204  every point was written (samples are in the WAL).
//	400  the body cannot be decoded (not snappy, not a WriteRequest), the tenant ID is invalid, or the
//	     request is over the series limit: nothing was written.
//	400  partial write: some series had invalid labels (empty, invalid UTF-8, duplicate names, over a
//	     length limit) or some points were refused for good (out of order, duplicate timestamp with
//	     another value, too old, too far in the future, invalid histogram); everything else was written,
//	     and the body counts what was rejected by reason and names the first series (index, labels).
//	     Thanos answers 409 here; senders treat both as final, and the specs say 400.
//	400  partial write for a tenant limit (package limits; the body names the limit as the reason):
//	     series over the tenant's labels_per_series_limit, label_name_length_limit or
//	     label_value_length_limit, histograms over its native_histogram_buckets_limit (router); new
//	     series over its head_series_limit or series_per_metric_limit (ingester: the tenant's existing
//	     series keep being written, only series it does not have yet are refused). Everything else
//	     was written. Never 5xx: the sender must not retry a tenant's own limit.
//	401  (with an Authenticator: --receive.credentials-file, --receive.tenant-certificate-field) no
//	     identity, or a wrong one: no bearer token or basic-auth credentials, an unknown token, a
//	     wrong user name or password, no verified client certificate. WWW-Authenticate names the
//	     schemes. A client certificate that the TLS layer refuses (unknown CA, expired) never gets
//	     an HTTP answer: the handshake fails.
//	403  a valid identity writing a tenant it may not: a tenant header naming another tenant than
//	     the certificate's or the credentials' (a header never overrides an identity; Thanos lets
//	     the certificate win silently, Weir refuses so that a misrouted sender is noticed), a
//	     certificate without the configured field, a certificate and credentials of two tenants.
//	405  not a POST.
//	413  the body, or what it decompresses to, is over its limit (checked before reading or allocating).
//	413  the request is over one of its tenant's request limits (request.size_bytes_limit, checked
//	     before reading; request.series_limit; request.samples_limit, samples and histogram
//	     samples), as in Thanos: nothing was written, the body names the limit.
//	415  a Content-Encoding other than snappy, or a Content-Type other than protobuf Remote Write 1.0
//	     or 2.0 (proto=prometheus.WriteRequest or io.prometheus.write.v2.Request), or a message that
//	     --remote-write.accepted-protobuf-messages leaves out (a 2.0 sender then falls back to 1.0).
//	     A request without either header is taken as Remote Write 1.0 (snappy, protobuf), as
//	     Prometheus' own receiver does.
//	400  (router) the replicas of some series refused the forwarded write as invalid (a version skew
//	     or a bug: replicas validate what the router already validated).
//	503  not ready yet (WAL replay), no slot in time to verify a password (bcrypt, bounded), the tenant's TSDB is opening, failed to open, or is closing; the
//	     data volume is below its free-space reserve, or the tenant's WAL failed a write and is not
//	     reopened yet (tenant/walguard.go: nothing is acknowledged behind a torn record); or the
//	     request was cancelled, its body did not arrive within the server's read timeout, or no write
//	     slot was free in time (Limiter); or (router) some series did not reach a write quorum (replicas
//	     unavailable, timed out, known down, or over the in-flight bound), or there is no usable
//	     hashring (none loaded, none for the tenant, fewer endpoints or zones than the replication
//	     factor). Retry-After is set. Points that did land are sent again and accepted as duplicates.
//	429  the tenant is over its ingestion_rate_limit (the router's token bucket, limits.RateLimiter):
//	     nothing was written; Retry-After says in how many seconds the request's samples will be
//	     there. Senders back off and retry.
//	500  another storage failure (an append or commit error that is not the WAL's). Retried by the
//	     sender; nothing was acknowledged.
//
// # OTLP answers
//
// OTLPHandler (POST /api/v1/otlp/v1/metrics, /api/v1/otlp; otlp.go) translates an OTLP metrics
// request with Prometheus' translator into series and writes them as above: same tenant, limits,
// validation, storage. It answers as the OTLP/HTTP specification says, whose senders retry only 429,
// 502, 503 and 504, in the request's encoding (protobuf or JSON):
//
//	200  ExportMetricsServiceResponse. When points were refused for good — what Remote Write answers
//	     with a 400 partial write (invalid labels, out of order, too old, a tenant's shape or series
//	     limit), delta or unspecified temporality (not converted: a router cannot keep the running
//	     sums, see otlp_temporality.go), metrics the translator refuses — partial_success counts them
//	     in rejected_data_points and error_message says why; the rest was written.
//	400  the body is not an ExportMetricsServiceRequest (protobuf or JSON) or not gzip, the tenant ID
//	     is invalid, the request is over the series limit. A google.rpc.Status says why (so for
//	     every error status).
//	401, 403, 405, 413, 415, 429  as for Remote Write; 415 also for a Content-Encoding other than
//	     gzip or identity, or a Content-Type other than application/x-protobuf or application/json.
//	503  as for Remote Write, and also for a storage failure Remote Write answers 500 (OTLP senders
//	     do not retry 500). Retry-After is set.
//
// Replication (router.go, quorum.go): a write succeeds when floor(RF/2)+1 replicas of every series
// acked it; quorum.go has the exact rules. The ingest side (ingest.go) serves node-to-node writes over
// gRPC and never forwards again; the protocol between them (codec.go, ingestpb/ingest.proto) lets
// routers and ingesters of neighbouring releases work together during a rolling upgrade.
//
// Every answer, errors included, counts the points written in X-Prometheus-Remote-Write-Samples-Written,
// -Histograms-Written and -Exemplars-Written (Remote Write 2.0 requires them; 0 when nothing was).
//
// Remote Write 2.0 (unmarshalv2.go) is decoded into the same series as 1.0 plus, per series, what 1.0
// cannot carry (write.SeriesExtra: metadata, start timestamps), which routers forward beside the 1.0
// payload (extrascodec.go) and ingesters store. 1.0's own metadata (per metric family) is ignored.
//
// Exemplars are best effort, as in Prometheus: rejected exemplars are counted in metrics but never fail
// a request.
package receive
