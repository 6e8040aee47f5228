package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// gather scrapes a registry holding only the collector of cur and indexes the
// samples by metric name and label value ("" when unlabelled).
func gather(t *testing.T, cur *certconfig.Current) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCertificateCollector(cur))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range families {
		out[f.GetName()] = map[string]float64{}
		for _, m := range f.GetMetric() {
			out[f.GetName()][labelValue(m)] = value(m)
		}
	}
	return out
}

func labelValue(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	return m.GetLabel()[0].GetValue()
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestCertificateCollector(t *testing.T) {
	p := pki()
	on := build(t, "on", p.cfg, "", false)
	off := build(t, "off", p.api, "", false)
	off.Enabled = false
	cur := new(certconfig.Current)
	lastOK := time.Unix(1_700_000_000, 500_000_000)
	cur.SetStatus(certconfig.ReloadStatus{Successes: 3, Failures: 2, LastSuccess: lastOK})

	t.Run("before any snapshot", func(t *testing.T) {
		got := gather(t, cur)
		if len(got["mtlsproxy_certificate_enabled"]) != 0 {
			t.Errorf("certificate series without a snapshot: %v", got)
		}
		if got["mtlsproxy_config_reloads_total"]["failure"] != 2 {
			t.Errorf("reloads %v", got["mtlsproxy_config_reloads_total"])
		}
	})

	cur.Swap(&certconfig.Snapshot{Certificates: map[string]*certconfig.Certificate{
		"on": on, "off": off}})
	got := gather(t, cur)
	want := map[string]map[string]float64{
		"mtlsproxy_certificate_not_after_timestamp_seconds": {
			"on":  float64(p.cfg.Cert.NotAfter.Unix()),
			"off": float64(p.api.Cert.NotAfter.Unix()),
		},
		"mtlsproxy_certificate_enabled":  {"on": 1, "off": 0},
		"mtlsproxy_config_reloads_total": {"success": 3, "failure": 2},

		"mtlsproxy_config_last_reload_success_timestamp_seconds": {"": 1_700_000_000.5},
	}
	for name, series := range want {
		for label, v := range series {
			if g, ok := got[name][label]; !ok || g != v {
				t.Errorf("%s{%s} = %v (present %v), want %v", name, label, g, ok, v)
			}
		}
	}

	t.Run("a removed certificate disappears", func(t *testing.T) {
		cur.Swap(&certconfig.Snapshot{Certificates: map[string]*certconfig.Certificate{
			"on": on}})
		got := gather(t, cur)
		if _, ok := got["mtlsproxy_certificate_enabled"]["off"]; ok {
			t.Error("off still has a series after it left the snapshot")
		}
	})
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, "")
	e.add(addRequest("acme", pki().api))
	r := e.mustStatus(e.call(http.MethodGet, "/metrics", readToken, nil), 200)
	body := string(r.body)
	for _, want := range []string{
		`mtlsproxy_certificate_enabled{certificate="acme"} 1`,
		`mtlsproxy_certificate_enabled{certificate="cfg"} 1`,
		`mtlsproxy_config_reloads_total{result="success"}`,
		"mtlsproxy_certificate_not_after_timestamp_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestMetricsUsesTheGivenGatherer(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total"}))
	srv, err := New(Options{Current: loadedCurrent(t), Token: adminToken, Gatherer: reg,
		Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ts: newTestServer(t, srv)}
	body := string(e.mustStatus(e.call(http.MethodGet, "/metrics", adminToken, nil), 200).body)
	if !strings.Contains(body, "other_total 0") || strings.Contains(body, "mtlsproxy_") {
		t.Errorf("/metrics does not serve exactly the given gatherer:\n%s", body)
	}
}
