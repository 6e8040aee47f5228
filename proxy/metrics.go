package proxy

import (
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/proxy/egress"
)

// Label values the proxy uses besides certificate names and error codes.
const (
	// LabelOK is the code label of a request whose upstream response was relayed
	// whole (whatever its status), or of a tunnel that opened.
	LabelOK = "ok"
	// LabelNone is the certificate label of a request that asked for none.
	LabelNone = "none"
	// LabelUnknown is the certificate label of a request that named a certificate
	// the snapshot in force does not have.
	LabelUnknown = "unknown"
)

// durationBuckets reach two minutes: webhooks to slow receivers take that long.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// metrics are the proxy's Prometheus series:
//
//	mtlsproxy_requests_total{certificate,code}
//	mtlsproxy_request_duration_seconds{certificate}
//	mtlsproxy_upstream_tls_errors_total{certificate,reason}
//	mtlsproxy_tls_handshakes_total{certificate,resumed}
//	mtlsproxy_egress_denied_total{reason}
//	mtlsproxy_requests_in_flight
//	mtlsproxy_upstream_connections_open
//
// A handshake counts once the client side completes it: in TLS 1.3 the server may
// still reject the certificate afterwards, which then also counts as a TLS error.
// Every label takes few values: certificate is the name of a certificate in the
// snapshot in force, LabelNone or LabelUnknown; code is an error code or LabelOK;
// reason is a TLS error code, or an egress.DeniedError reason. Series of a
// certificate are deleted when a Swap removes it.
type metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	tlsErrors  *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	denied     *prometheus.CounterVec
	inFlight   prometheus.Gauge
	connsOpen  prometheus.Gauge

	cur *certconfig.Current
	// mu orders recording (shared) against the deletion of a removed
	// certificate's series (exclusive), so that none is created again after it.
	mu sync.RWMutex
}

func newMetrics(cur *certconfig.Current) *metrics {
	cert := []string{"certificate"}
	return &metrics{
		cur: cur,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsproxy_requests_total",
			Help: `Requests handled, by certificate and error code ("ok" when relayed).`,
		}, []string{"certificate", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mtlsproxy_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its response " +
				"(for a tunnel: until it is open).",
			Buckets: durationBuckets,
		}, cert),
		tlsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsproxy_upstream_tls_errors_total",
			Help: "Upstream TLS failures, by certificate and error code.",
		}, []string{"certificate", "reason"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsproxy_tls_handshakes_total",
			Help: "Completed upstream TLS handshakes, by certificate and resumption.",
		}, []string{"certificate", "resumed"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsproxy_egress_denied_total",
			Help: "Destinations refused by the egress policy, by reason.",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mtlsproxy_requests_in_flight",
			Help: "Requests being handled (a tunnel counts until it is open).",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mtlsproxy_upstream_connections_open",
			Help: "Upstream connections (pooled and tunnelled) currently open.",
		}),
	}
}

// register adds every series to reg; a nil reg keeps them unregistered.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.tlsErrors,
		m.handshakes, m.denied, m.inFlight, m.connsOpen} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// record counts one finished request.
func (m *metrics) record(ex *exchange, o Outcome) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	cert := m.certLabel(ex)
	code := o.Code
	if code == "" {
		code = LabelOK
	}
	m.requests.WithLabelValues(cert, code).Inc()
	m.duration.WithLabelValues(cert).Observe(o.Duration.Seconds())
	if tlsCodes[o.Code] {
		m.tlsErrors.WithLabelValues(cert, o.Code).Inc()
	}
	if ok, resumed := ex.hs.completed(); ok {
		m.handshakes.WithLabelValues(cert, strconv.FormatBool(resumed)).Inc()
	}
	if d, ok := errors.AsType[*egress.DeniedError](ex.err); ok {
		m.denied.WithLabelValues(deniedReason(d)).Inc()
	}
}

// certLabel is the name of the certificate ex asked for if both its snapshot and
// the one in force have it.
func (m *metrics) certLabel(ex *exchange) string {
	name := ex.certName
	if name == "" {
		return LabelNone
	}
	for _, s := range []*certconfig.Snapshot{ex.snap, m.cur.Load()} {
		if s == nil || s.Certificates[name] == nil {
			return LabelUnknown
		}
	}
	return name
}

// deniedReason keeps the label to the documented reasons, whatever a later
// version of the egress package adds.
func deniedReason(d *egress.DeniedError) string {
	if slices.Contains(egress.Reasons(), d.Reason) {
		return d.Reason
	}
	return LabelUnknown
}

// prune deletes the series of the certificates that next no longer has.
func (m *metrics) prune(old, next *certconfig.Snapshot) {
	if old == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range old.Certificates {
		if next != nil && next.Certificates[name] != nil {
			continue
		}
		match := prometheus.Labels{"certificate": name}
		m.requests.DeletePartialMatch(match)
		m.duration.DeletePartialMatch(match)
		m.tlsErrors.DeletePartialMatch(match)
		m.handshakes.DeletePartialMatch(match)
	}
}

// track counts c as open until it is closed.
func (m *metrics) track(c net.Conn) net.Conn {
	m.connsOpen.Inc()
	closed := &closeOnce{gauge: m.connsOpen}
	if tc, ok := c.(tcpConn); ok {
		return &trackedTCPConn{tcpConn: tc, closed: closed}
	}
	return &trackedConn{Conn: c, closed: closed}
}

// tcpConn is what *net.TCPConn offers beyond net.Conn that copies rely on:
// half-closing (goproxy's tunnels use it to pass on an end of stream) and
// ReadFrom/WriteTo, through which io.Copy splices.
type tcpConn interface {
	net.Conn
	CloseWrite() error
	CloseRead() error
	io.ReaderFrom
	io.WriterTo
}

type closeOnce struct {
	once  sync.Once
	gauge prometheus.Gauge
}

func (c *closeOnce) done() { c.once.Do(c.gauge.Dec) }

// trackedConn lowers the open-connections gauge when it is first closed.
type trackedConn struct {
	net.Conn
	closed *closeOnce
}

func (c *trackedConn) Close() error {
	defer c.closed.done()
	return c.Conn.Close()
}

// trackedTCPConn is trackedConn for a connection that keeps tcpConn's methods.
type trackedTCPConn struct {
	tcpConn
	closed *closeOnce
}

func (c *trackedTCPConn) Close() error {
	defer c.closed.done()
	return c.tcpConn.Close()
}
