package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// series returns every series of the metric called name, keyed by its labels
// written "k=v,k=v" in name order (the empty string for none). A histogram's
// value is its sample count.
func series(t testing.TB, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := strings.Join(labels, ",")
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// checkSeries asserts that the metric has exactly the series in want.
func checkSeries(t *testing.T, h *harness, name string, want map[string]float64) {
	t.Helper()
	got := series(t, h.reg, name)
	if len(got) != len(want) {
		t.Errorf("%s: series %v, want %v", name, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s{%s} = %v, want %v (all: %v)", name, k, got[k], v, got)
		}
	}
}

// gauge reads a gauge without labels.
func gauge(t testing.TB, h *harness, name string) float64 {
	t.Helper()
	return series(t, h.reg, name)[""]
}

func TestRequestMetrics(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven}.start(t)
	plain := plainUpstream(t, echoHandler)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme"), clientCert("off", disabled())}))
	send := func(url string, header ...string) { h.get(t, url, header...) }
	send(httpURL(up.URL), DefaultCertHeader, "acme")
	send(httpURL(up.URL), DefaultCertHeader, "acme")
	send(httpURL(up.URL), DefaultCertHeader, "off")
	send(httpURL(up.URL), DefaultCertHeader, "ghost")
	send(httpURL(up.URL), DefaultCertHeader, "../../etc/passwd")
	send(plain.URL + "/a/very/long/path?with=query")
	send("http://10.0.0.1/", DefaultCertHeader, "acme")
	send("http://"+closedPort(t)+"/", DefaultCertHeader, "acme")
	h.outcomesAtLeast(t, 8)

	checkSeries(t, h, "mtlsproxy_requests_total", map[string]float64{
		"certificate=acme,code=ok":                          2,
		"certificate=off,code=ok":                           1,
		"certificate=unknown,code=ok":                       2,
		"certificate=none,code=ok":                          1,
		"certificate=acme,code=egress_denied":               1,
		"certificate=acme,code=upstream_connection_refused": 1,
	})
	checkSeries(t, h, "mtlsproxy_request_duration_seconds", map[string]float64{
		"certificate=acme": 4, "certificate=off": 1, "certificate=unknown": 2,
		"certificate=none": 1,
	})
	checkSeries(t, h, "mtlsproxy_egress_denied_total", map[string]float64{"reason=private": 1})
	// Connection refused is not a TLS failure.
	checkSeries(t, h, "mtlsproxy_upstream_tls_errors_total", map[string]float64{})
}

func TestUpstreamTLSErrorMetrics(t *testing.T) {
	t.Parallel()
	strict := upstream{}.start(t) // requires a certificate from the client root
	other := upstream{clientCAs: fixture().serverRoot.Pool()}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")},
		certconfig.RouteConfig{Host: "127.0.0.1", TLS: true}))
	h.get(t, httpURL(strict.URL))
	h.get(t, httpURL(other.URL), DefaultCertHeader, "acme")
	h.get(t, httpURL(other.URL), DefaultCertHeader, "acme")
	h.outcomesAtLeast(t, 3)
	checkSeries(t, h, "mtlsproxy_upstream_tls_errors_total", map[string]float64{
		"certificate=none,reason=client_certificate_required": 1,
		"certificate=acme,reason=incomplete_chain":            2,
	})
}

// closeAfterEach echoes the request and closes the connection, so that the next
// request needs a new one.
func closeAfterEach(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	echoHandler(w, r)
}

// TestHandshakeMetrics makes every request open a connection (the upstream
// closes each one): the first handshake is full, the second resumes.
func TestHandshakeMetrics(t *testing.T) {
	t.Parallel()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			up := upstream{maxVersion: ver.v, handler: closeAfterEach}.start(t)
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("acme")}))
			var resumed []bool
			for range 2 {
				resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, "acme")
				resumed = append(resumed, decodeEcho(t, resp, body).Resumed)
			}
			if resumed[0] || !resumed[1] {
				t.Fatalf("upstream saw resumption %v, want a full handshake then a resumed one",
					resumed)
			}
			h.outcomesAtLeast(t, 2)
			checkSeries(t, h, "mtlsproxy_tls_handshakes_total", map[string]float64{
				"certificate=acme,resumed=false": 1,
				"certificate=acme,resumed=true":  1,
			})
		})
	}
}

func TestEgressDeniedMetric(t *testing.T) {
	t.Parallel()
	h := newHarness(t, strictSnapshot(t))
	for _, url := range []string{"http://10.0.0.1/", "http://192.168.0.1/",
		"http://127.0.0.1:1/", "http://169.254.169.254/", "http://0x7f.1/"} {
		h.get(t, url)
	}
	rawConnect(t, h, "10.2.3.4:443")
	h.outcomesAtLeast(t, 6)
	checkSeries(t, h, "mtlsproxy_egress_denied_total", map[string]float64{
		"reason=private": 3, "reason=loopback": 2, "reason=metadata": 1,
	})
}

func TestInFlightMetric(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	up := plainUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	})
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := h.client()
		if resp, err := c.Get(up.URL); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-arrived
	if got := gauge(t, h, "mtlsproxy_requests_in_flight"); got != 1 {
		t.Errorf("in flight during the request: %v", got)
	}
	close(release)
	<-done
	h.lastOutcome(t)
	if got := gauge(t, h, "mtlsproxy_requests_in_flight"); got != 0 {
		t.Errorf("in flight after the request: %v", got)
	}
}

func TestUpstreamConnectionsMetric(t *testing.T) {
	t.Parallel()
	plain := plainUpstream(t, echoHandler)
	up := upstream{clientAuth: tls.RequestClientCert}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil))
	const name = "mtlsproxy_upstream_connections_open"

	resp, body := h.get(t, plain.URL)
	decodeEcho(t, resp, body)
	if got := gauge(t, h, name); got != 1 {
		t.Errorf("with one pooled connection: %v", got)
	}
	h.proxy.Close()
	waitFor(t, "the pooled connection to close", func() bool { return gauge(t, h, name) == 0 })

	c := tunnelClient(h, nil)
	r, err := c.Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	if got := gauge(t, h, name); got != 1 {
		t.Errorf("with a tunnel open: %v", got)
	}
	c.CloseIdleConnections()
	waitFor(t, "the tunnel to close", func() bool { return gauge(t, h, name) == 0 })
}

// TestRemovedCertificateSeries swaps in a snapshot without "old": its series go,
// and a later request that names it counts as unknown.
func TestRemovedCertificateSeries(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven}.start(t)
	keep, old := clientCert("keep"), clientCert("old")
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{keep, old}, certconfig.RouteConfig{Host: "127.0.0.1", TLS: true}))
	for _, name := range []string{"keep", "old"} {
		h.get(t, httpURL(up.URL), DefaultCertHeader, name)
	}
	h.outcomesAtLeast(t, 2)
	before := series(t, h.reg, "mtlsproxy_tls_handshakes_total")
	if before["certificate=old,resumed=false"] != 1 {
		t.Fatalf("handshakes before the swap: %v", before)
	}

	h.cur.Swap(newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{keep}))
	for _, metric := range []string{"mtlsproxy_requests_total",
		"mtlsproxy_request_duration_seconds", "mtlsproxy_tls_handshakes_total"} {
		for labels := range series(t, h.reg, metric) {
			if strings.Contains(labels, "certificate=old") {
				t.Errorf("%s{%s} survived the swap", metric, labels)
			}
		}
	}
	if got := series(t, h.reg, "mtlsproxy_requests_total")["certificate=keep,code=ok"]; got != 1 {
		t.Errorf("the kept certificate's count is %v", got)
	}
	h.get(t, httpURL(up.URL), DefaultCertHeader, "old")
	h.outcomesAtLeast(t, 3)
	requests := series(t, h.reg, "mtlsproxy_requests_total")
	if got := requests["certificate=unknown,code=ok"]; got != 1 {
		t.Errorf("a request for the removed certificate counted %v as unknown", got)
	}
}

func TestMetricsRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	cur := &certconfig.Current{}
	if _, err := New(Options{Current: cur, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Current: cur, Registerer: reg}); err == nil {
		t.Error("a second proxy registered the same metrics without an error")
	}
	if _, err := New(Options{Current: cur}); err != nil {
		t.Errorf("without a registerer: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	// Vectors appear once they have a series; the gauges always do.
	want := "mtlsproxy_requests_in_flight,mtlsproxy_upstream_connections_open"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("families %s, want %s", got, want)
	}
}
