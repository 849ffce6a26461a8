package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the Prometheus registry of ledgerd (API.md section 10). Counters owned by
// other components are read through gauge functions when scraped, so the hot paths only
// touch their own atomics.
type Metrics struct {
	registry  *prometheus.Registry
	authorize *prometheus.HistogramVec
}

// MetricSources are read at scrape time.
type MetricSources struct {
	EventsIngested  func() float64
	Rejections      func() float64
	ProjectionLag   func() float64
	TopUpsByState   func() map[string]float64
	UsageRedelivery func() float64
}

// NewMetrics registers the ledger's metrics.
func NewMetrics(src MetricSources) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{registry: reg}
	m.authorize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ledger_authorize_duration_seconds",
		Help:    "Time to answer a call authorization, by outcome.",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3},
	}, []string{"allowed"})
	reg.MustRegister(m.authorize)
	counter := func(name, help string, f func() float64) {
		if f != nil {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
		}
	}
	gauge := func(name, help string, f func() float64) {
		if f != nil {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
		}
	}
	counter("ledger_usage_events_ingested_total", "Usage events charged or recognised as duplicates.", src.EventsIngested)
	counter("ledger_usage_redeliveries_total", "Usage messages handed back after a passing failure.", src.UsageRedelivery)
	gauge("ledger_rejections_open", "Rejected usage events not yet resolved.", src.Rejections)
	gauge("ledger_projection_lag_events", "Events in the store not yet applied to the read models.", src.ProjectionLag)
	if src.TopUpsByState != nil {
		reg.MustRegister(&topUpCollector{desc: prometheus.NewDesc("ledger_top_ups", "Top-ups by state.", []string{"state"}, nil), read: src.TopUpsByState})
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *Metrics) observeAuthorize(d time.Duration, allowed bool) {
	label := "false"
	if allowed {
		label = "true"
	}
	m.authorize.WithLabelValues(label).Observe(d.Seconds())
}

type topUpCollector struct {
	desc *prometheus.Desc
	read func() map[string]float64
}

func (c *topUpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *topUpCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, state)
	}
}
