package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// certificateCollector reads the snapshot in force on every scrape, so a removed
// certificate has no series left behind and a replaced one shows its new dates.
type certificateCollector struct {
	cur         *certconfig.Current
	notAfter    *prometheus.Desc
	enabled     *prometheus.Desc
	reloads     *prometheus.Desc
	lastSuccess *prometheus.Desc
}

// NewCertificateCollector returns a collector of the certificates in cur and of
// the outcome of configuration loads:
//
//	mtlsproxy_certificate_not_after_timestamp_seconds{certificate}
//	mtlsproxy_certificate_enabled{certificate}
//	mtlsproxy_config_reloads_total{result="success"|"failure"}
//	mtlsproxy_config_last_reload_success_timestamp_seconds
func NewCertificateCollector(cur *certconfig.Current) prometheus.Collector {
	return &certificateCollector{
		cur: cur,
		notAfter: prometheus.NewDesc("mtlsproxy_certificate_not_after_timestamp_seconds",
			"When the client certificate expires, in seconds since the Unix epoch.",
			[]string{"certificate"}, nil),
		enabled: prometheus.NewDesc("mtlsproxy_certificate_enabled",
			"1 when the client certificate is presented, 0 when it is disabled.",
			[]string{"certificate"}, nil),
		reloads: prometheus.NewDesc("mtlsproxy_config_reloads_total",
			"Configuration loads since start, by result.", []string{"result"}, nil),
		lastSuccess: prometheus.NewDesc("mtlsproxy_config_last_reload_success_timestamp_seconds",
			"When a configuration was last put in force, in seconds since the Unix epoch.",
			nil, nil),
	}
}

// Describe sends the descriptions of every metric the collector emits.
func (c *certificateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.notAfter
	ch <- c.enabled
	ch <- c.reloads
	ch <- c.lastSuccess
}

// Collect reads the snapshot and the load status as they are now.
func (c *certificateCollector) Collect(ch chan<- prometheus.Metric) {
	if snap := c.cur.Load(); snap != nil {
		for name, cert := range snap.Certificates {
			c.collectCertificate(ch, name, cert)
		}
	}
	st := c.cur.Status()
	emit(ch, c.reloads, prometheus.CounterValue, float64(st.Successes), "success")
	emit(ch, c.reloads, prometheus.CounterValue, float64(st.Failures), "failure")
	if !st.LastSuccess.IsZero() {
		secs := float64(st.LastSuccess.UnixNano()) / 1e9
		emit(ch, c.lastSuccess, prometheus.GaugeValue, secs)
	}
}

func (c *certificateCollector) collectCertificate(ch chan<- prometheus.Metric, name string,
	cert *certconfig.Certificate) {
	if len(cert.TLS.Certificate) > 0 {
		emit(ch, c.notAfter, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), name)
	}
	enabled := 0.0
	if cert.Enabled {
		enabled = 1
	}
	emit(ch, c.enabled, prometheus.GaugeValue, enabled, name)
}

// emit sends one metric; a mistake in labels becomes an invalid metric, which the
// registry reports on scrape, rather than a panic.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64,
	labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
