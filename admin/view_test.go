package admin

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// build makes a certificate as the config loader would, failing the test on error.
func build(t *testing.T, name string, c *testpki.Cert, caPEM string,
	insecure bool) *certconfig.Certificate {
	t.Helper()
	cert, err := certconfig.BuildCertificate(certconfig.CertificateConfig{Name: name,
		CertPEM: string(c.CertPEM()), KeyPEM: string(c.KeyPEM()), CAPEM: caPEM,
		InsecureSkipVerify: insecure}, "", certconfig.SourceConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestViewWarnings(t *testing.T) {
	p := pki()
	fullChain := string(p.inter.CertPEM()) + string(p.root.CertPEM())
	now := time.Now()
	tests := []struct {
		name    string
		cert    *certconfig.Certificate
		at      time.Time
		want    []string
		notWant []string
	}{
		{"healthy", build(t, "ok", p.api, fullChain, false), now, nil,
			[]string{"expire", "chain", "insecure", "valid"}},
		{"expired", build(t, "x", p.expired, fullChain, false), now,
			[]string{"certificate expired on"}, nil},
		{"expires soon", build(t, "x", p.soon, fullChain, false), now,
			[]string{"certificate expires on", "in 10 days"}, nil},
		{"not yet valid", build(t, "x", p.future, fullChain, false), now,
			[]string{"certificate is not valid until"}, nil},
		{"chain does not reach a root", build(t, "x", p.api, "", false), now,
			[]string{"chain does not reach a root"}, nil},
		{"insecure", build(t, "x", p.api, fullChain, true), now,
			[]string{"insecure_skip_verify"}, nil},
		// Date warnings are computed when asked: a certificate loaded while valid
		// shows as expired once its date has passed, without a reload.
		{"expired since it was loaded", build(t, "x", p.api, fullChain, false),
			now.Add(400 * 24 * time.Hour), []string{"certificate expired on"},
			[]string{"expires on"}},
		{"expiring since it was loaded", build(t, "x", p.api, fullChain, false),
			p.api.Cert.NotAfter.Add(-5 * 24 * time.Hour), []string{"in 5 days"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := certificateView(&certconfig.Snapshot{}, tc.cert, tc.at)
			for _, w := range tc.want {
				if !hasWarning(v.Warnings, w) {
					t.Errorf("warnings %q lack %q", v.Warnings, w)
				}
			}
			for _, w := range tc.notWant {
				if hasWarning(v.Warnings, w) {
					t.Errorf("warnings %q hold %q", v.Warnings, w)
				}
			}
			if n := countText(v.Warnings, "chain does not reach"); n > 1 {
				t.Errorf("chain warning given %d times", n)
			}
			if n := countText(v.Warnings, "insecure_skip_verify"); n > 1 {
				t.Errorf("insecure warning given %d times", n)
			}
		})
	}
}

func countText(list []string, text string) int {
	n := 0
	for _, s := range list {
		if strings.Contains(s, text) {
			n++
		}
	}
	return n
}

func TestViewFields(t *testing.T) {
	p := pki()
	c := build(t, "acme", p.cfg, string(p.inter.CertPEM())+string(p.root.CertPEM()), false)
	snap := &certconfig.Snapshot{Certificates: map[string]*certconfig.Certificate{"acme": c}}
	for _, rc := range []certconfig.RouteConfig{
		{Host: "a.example", Port: 443, Certificate: "acme"},
		{Host: "*.b.example", Certificate: "acme", TLS: true},
		{Host: "c.example", Certificate: "gone"},
	} {
		r, err := certconfig.CompileRoute(rc)
		if err != nil {
			t.Fatal(err)
		}
		snap.Routes = append(snap.Routes, r)
	}
	v := certificateView(snap, c, time.Now())

	if v.Subject != p.cfg.Cert.Subject.String() || v.Issuer != p.inter.Cert.Subject.String() {
		t.Errorf("subject %q issuer %q", v.Subject, v.Issuer)
	}
	if v.NotAfter != p.cfg.Cert.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("not_after %q", v.NotAfter)
	}
	if v.SHA256Fingerprint != fingerprintOf(p.cfg) {
		t.Errorf("fingerprint %q, want %q", v.SHA256Fingerprint, fingerprintOf(p.cfg))
	}
	if len(v.Chain) != 2 || v.Chain[0] != p.inter.Cert.Subject.String() {
		t.Errorf("chain %q", v.Chain)
	}
	if len(v.Routes) != 2 || v.Routes[0] != (RouteView{Host: "a.example", Port: 443}) ||
		v.Routes[1] != (RouteView{Host: "*.b.example", TLS: true}) {
		t.Errorf("routes %+v", v.Routes)
	}
	dangling := danglingRoutes(snap)
	if len(dangling) != 1 || dangling[0].Certificate != "gone" {
		t.Errorf("dangling %+v", dangling)
	}
	list := listView(snap, certconfig.ReloadStatus{}, time.Now())
	if len(list.Certificates) != 1 || !slices.Equal(list.Certificates[0].Routes, v.Routes) {
		t.Errorf("the list shows routes %+v, the single view %+v", list.Certificates, v.Routes)
	}
}

func TestSerialFormat(t *testing.T) {
	c := pki().root.Client(testpki.Options{CommonName: "serial", Serial: 0x0102ab})
	if got := serialOf(c.Cert); got != "01:02:ab" {
		t.Errorf("serial %q, want 01:02:ab", got)
	}
}

// TestWarningsAreComputedPerRequest serves a snapshot through the API with the
// server's clock moved past the certificate's end.
func TestWarningsAreComputedPerRequest(t *testing.T) {
	cur := loadedCurrent(t)
	srv, err := New(Options{Current: cur, Token: adminToken, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv.now = func() time.Time { return time.Now().Add(2 * 365 * 24 * time.Hour) }
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	e := &env{t: t, ts: ts}
	var l ListResponse
	e.mustStatus(e.call(http.MethodGet, "/v1/certificates", adminToken, nil), 200).decode(t, &l)
	if len(l.Certificates) != 1 || !hasWarning(l.Certificates[0].Warnings, "expired on") {
		t.Errorf("list %+v, want cfg with an expired warning", l.Certificates)
	}
}
