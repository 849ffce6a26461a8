package api

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestHealthAndReadiness: /healthz answers while the process runs; /readyz follows
// Options.Ready (store reachable, projections caught up) with 200 or 503 and the reason.
func TestHealthAndReadiness(t *testing.T) {
	var notReady error
	ts := newTestServer(t, Options{Ready: func(context.Context) error { return notReady }})
	for _, tt := range []struct {
		path       string
		ready      error
		wantStatus int
		wantBody   string
	}{
		{"/healthz", nil, 200, `{"status":"ok"}`},
		{"/readyz", nil, 200, `{"status":"ready"}`},
		{"/readyz", errors.New("projections are more than 5s behind"), 503, `{"reason":"projections are more than 5s behind","status":"not_ready"}`},
		{"/healthz", errors.New("not ready"), 200, `{"status":"ok"}`},
	} {
		notReady = tt.ready
		r := ts.mustServe(t, "GET", tt.path, "")
		if r.status != tt.wantStatus || string(bytes.TrimSpace(r.body)) != tt.wantBody {
			t.Errorf("GET %s (ready: %v): %d %s, want %d %s", tt.path, tt.ready, r.status, r.body, tt.wantStatus, tt.wantBody)
		}
	}
}

// TestMetricsExposition: /metrics is valid Prometheus text format holding the metrics
// of API.md section 10 (events ingested, rejections, projection lag, top-ups by state,
// authorization latency) and the Go runtime's; the authorization histogram counts
// every answer.
func TestMetricsExposition(t *testing.T) {
	ts := newTestServer(t, Options{})
	ts.metrics = NewMetrics(MetricSources{
		EventsIngested:  func() float64 { return 7 },
		UsageRedelivery: func() float64 { return 1 },
		Rejections:      func() float64 { return 2 },
		ProjectionLag:   func() float64 { return 3 },
		TopUpsByState:   func() map[string]float64 { return map[string]float64{"succeeded": 4, "failed": 1} },
	})
	ts.handler = ts.Handler()
	ts.mustServe(t, "PUT", "/v1/accounts/acme", `{"currency":"USD"}`)
	ts.mustServe(t, "GET", "/v1/accounts/acme/authorize?direction=outbound&number_type=standard", "")
	ts.mustServe(t, "GET", "/v1/accounts/acme/authorize?direction=inbound&number_type=standard", "")
	ts.authorizeMsg([]byte(`{"account_id":"acme","direction":"outbound","number_type":"standard"}`))

	r := ts.mustServe(t, "GET", "/metrics", "")
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); !bytes.HasPrefix([]byte(ct), []byte("text/plain; version=0.0.4")) {
		t.Errorf("content type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("not Prometheus text format: %v\n%s", err, r.body)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := families[name]
		if f == nil {
			return 0, false
		}
	metrics:
		for _, m := range f.Metric {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
		return 0, false
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ledger_usage_events_ingested_total", nil, 7},
		{"ledger_usage_redeliveries_total", nil, 1},
		{"ledger_rejections_open", nil, 2},
		{"ledger_projection_lag_events", nil, 3},
		{"ledger_top_ups", map[string]string{"state": "succeeded"}, 4},
		{"ledger_top_ups", map[string]string{"state": "failed"}, 1},
		{"ledger_authorize_duration_seconds", map[string]string{"allowed": "false"}, 2},
		{"ledger_authorize_duration_seconds", map[string]string{"allowed": "true"}, 1},
	} {
		if got, ok := value(tt.name, tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
