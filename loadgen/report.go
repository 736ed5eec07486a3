package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is the outcome of a run. Its JSON field names are stable: scripts may rely on them.
type Report struct {
	URL      string `json:"url"`
	Protocol string `json:"protocol"`
	Spec     Spec   `json:"spec"`
	// Workers is the number of workers that ran (--concurrency, or fewer when there are fewer requests
	// per round than that).
	Workers    int     `json:"workers"`
	TargetRate float64 `json:"target_rate"` // samples/s; 0: as fast as possible

	DurationSeconds  float64 `json:"duration_seconds"`
	SamplesSent      int64   `json:"samples_sent"`
	SamplesAcked     int64   `json:"samples_acked"`
	SamplesPerSecond float64 `json:"samples_per_second"` // acknowledged samples per second
	BytesSent        int64   `json:"bytes_sent"`         // compressed request bodies
	RequestsSent     int64   `json:"requests_sent"`
	RequestsOK       int64   `json:"requests_ok"`
	RequestsFailed   int64   `json:"requests_failed"`
	// SeriesCreated counts the distinct series sent: the active ones plus those churn brought in.
	SeriesCreated int64 `json:"series_created"`

	Latency LatencyReport `json:"latency_seconds"`

	// ErrorsByStatus counts failed requests by HTTP status code ("0" for codes out of range).
	ErrorsByStatus map[string]int64 `json:"errors_by_status"`
	// TransportErrors counts requests that got no HTTP response (refused, reset, timed out).
	TransportErrors int64 `json:"transport_errors"`
	// FirstErrors holds the first error message per status code, and under "transport".
	FirstErrors map[string]string `json:"first_errors"`
}

// LatencyReport holds request latency quantiles in seconds, within 1.6%.
type LatencyReport struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func (r *runner) report(elapsed time.Duration, workers int) *Report {
	st := &r.stats
	var h histSnapshot
	st.latency.snapshot(&h)
	rep := &Report{
		URL:             r.cfg.URL,
		Protocol:        r.cfg.Protocol,
		Spec:            r.cfg.Spec,
		Workers:         workers,
		TargetRate:      r.cfg.Rate,
		DurationSeconds: elapsed.Seconds(),
		SamplesSent:     st.samplesSent.Load(),
		SamplesAcked:    st.samplesAcked.Load(),
		BytesSent:       st.bytesSent.Load(),
		RequestsSent:    st.requests.Load(),
		RequestsOK:      st.requestsOK.Load(),
		TransportErrors: st.transportErrs.Load(),
		ErrorsByStatus:  map[string]int64{},
		FirstErrors:     map[string]string{},
		Latency: LatencyReport{
			P50:  h.quantile(nil, 0.5).Seconds(),
			P90:  h.quantile(nil, 0.9).Seconds(),
			P99:  h.quantile(nil, 0.99).Seconds(),
			P999: h.quantile(nil, 0.999).Seconds(),
			Max:  (time.Duration(st.latency.max.Load()) * time.Microsecond).Seconds(),
		},
	}
	rep.RequestsFailed = st.requestsErr.Load()
	if elapsed > 0 {
		rep.SamplesPerSecond = float64(rep.SamplesAcked) / elapsed.Seconds()
	}
	rep.SeriesCreated = int64(r.cfg.Series) + int64(min(ChurnAt(r.cfg.Spec, elapsed.Milliseconds()), 1<<62))
	for code := range st.byStatus {
		if n := st.byStatus[code].Load(); n > 0 {
			rep.ErrorsByStatus[strconv.Itoa(code)] = n
		}
	}
	st.mu.Lock()
	for k, v := range st.firstErrs {
		rep.FirstErrors[k] = v
	}
	st.mu.Unlock()
	return rep
}

// WriteJSON writes the report as one indented JSON object.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes the report for people.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	s := rep.Spec
	rate := "as fast as possible"
	if rep.TargetRate > 0 {
		rate = formatCount(int64(rep.TargetRate)) + " samples/s"
	}
	if rep.Protocol == ProtocolOTLP {
		fmt.Fprintf(&b, "weir bench: %s (OTLP/HTTP, gzip protobuf)\n", rep.URL)
	} else {
		fmt.Fprintf(&b, "weir bench: %s (remote write %s)\n", rep.URL, rep.Protocol)
	}
	fmt.Fprintf(&b, "  load       %s series over %d tenant(s), %d labels each (%d values per label), churn %s/min\n",
		formatCount(int64(s.Series)), s.Tenants, s.LabelsPerSeries, s.LabelValueCardinality, formatCount(int64(s.ChurnPerMinute)))
	fmt.Fprintf(&b, "             %s samples/request, %d workers, rate %s\n", formatCount(int64(s.SamplesPerRequest)), rep.Workers, rate)
	fmt.Fprintf(&b, "  duration   %s\n", time.Duration(rep.DurationSeconds*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(&b, "  samples    %s sent, %s acknowledged, %s/s\n", formatCount(rep.SamplesSent), formatCount(rep.SamplesAcked), formatCount(int64(rep.SamplesPerSecond)))
	fmt.Fprintf(&b, "  requests   %s sent, %s ok, %s failed (%s compressed)\n", formatCount(rep.RequestsSent), formatCount(rep.RequestsOK), formatCount(rep.RequestsFailed), formatBytes(rep.BytesSent))
	fmt.Fprintf(&b, "  series     %s created (active + churned in)\n", formatCount(rep.SeriesCreated))
	l := rep.Latency
	fmt.Fprintf(&b, "  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", secs(l.P50), secs(l.P90), secs(l.P99), secs(l.P999), secs(l.Max))
	if rep.RequestsFailed == 0 {
		b.WriteString("  errors     none\n")
	} else {
		b.WriteString("  errors\n")
		codes := make([]string, 0, len(rep.ErrorsByStatus))
		for c := range rep.ErrorsByStatus {
			codes = append(codes, c)
		}
		sort.Slice(codes, func(i, j int) bool { a, _ := strconv.Atoi(codes[i]); b, _ := strconv.Atoi(codes[j]); return a < b })
		for _, c := range codes {
			fmt.Fprintf(&b, "    HTTP %s  %s requests  first: %s\n", c, formatCount(rep.ErrorsByStatus[c]), shorten(rep.FirstErrors[c]))
		}
		if rep.TransportErrors > 0 {
			fmt.Fprintf(&b, "    transport %s requests  first: %s\n", formatCount(rep.TransportErrors), shorten(rep.FirstErrors["transport"]))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func secs(s float64) string { return formatLatency(time.Duration(s * float64(time.Second))) }

func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// formatCount writes n with thousands separators.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
