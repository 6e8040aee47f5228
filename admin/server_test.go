package admin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

func TestAuthorization(t *testing.T) {
	e := newEnv(t, "")
	material := ReplaceRequest{CertificatePEM: string(pki().api.CertPEM()),
		PrivateKeyPEM: string(pki().api.KeyPEM())}
	// Changes aimed at a missing certificate or with an invalid body: with the right
	// token they fail after authorisation, so nothing changes whatever the outcome.
	routes := []struct {
		method, path string
		body         any
		change       bool
		authorised   int // status with a token allowed to use the route
	}{
		{"GET", "/v1/certificates", nil, false, 200},
		{"GET", "/v1/certificates/cfg", nil, false, 200},
		{"POST", "/v1/certificates", "{}", true, 400},
		{"PUT", "/v1/certificates/missing/material", material, true, 404},
		{"POST", "/v1/certificates/missing/enable", nil, true, 404},
		{"POST", "/v1/certificates/missing/disable", nil, true, 404},
		{"DELETE", "/v1/certificates/missing", nil, true, 404},
		{"GET", "/readyz", nil, false, 200},
		{"GET", "/metrics", nil, false, 200},
	}
	tokens := []struct{ name, token string }{
		{"no token", ""}, {"wrong token", "not-" + adminToken}, {"read token", readToken},
		{"admin token", adminToken},
	}
	for _, rt := range routes {
		for _, tok := range tokens {
			t.Run(rt.method+" "+rt.path+" "+tok.name, func(t *testing.T) {
				want := rt.authorised
				switch {
				case tok.token == "" || strings.HasPrefix(tok.token, "not-"):
					want = http.StatusUnauthorized
				case tok.token == readToken && rt.change:
					want = http.StatusForbidden
				}
				r := e.call(rt.method, rt.path, tok.token, rt.body)
				if r.status != want {
					t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
				}
				checkAuthAnswer(t, r)
			})
		}
	}
}

// checkAuthAnswer checks the body and headers of a refused request.
func checkAuthAnswer(t *testing.T, r response) {
	t.Helper()
	switch r.status {
	case http.StatusUnauthorized:
		if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
		}
		if code := r.apiError(t).Code; code != CodeUnauthorized {
			t.Errorf("code %q, want %q", code, CodeUnauthorized)
		}
	case http.StatusForbidden:
		if code := r.apiError(t).Code; code != CodeForbidden {
			t.Errorf("code %q, want %q", code, CodeForbidden)
		}
	}
}

func TestBearerSchemeIsRequired(t *testing.T) {
	e := newEnv(t, "")
	for _, header := range []string{adminToken, "Basic " + adminToken, "Bearer", "Bearer  "} {
		t.Run(header, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.ts.URL+"/v1/certificates", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", header)
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
		})
	}
}

func TestWithoutTokensEveryRouteButHealthzIsRefused(t *testing.T) {
	cur := loadedCurrent(t)
	srv, err := New(Options{Current: cur, Listen: "127.0.0.1:9901", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	e := &env{t: t, ts: ts}
	for _, path := range []string{"/v1/certificates", "/v1/certificates/cfg", "/readyz",
		"/metrics"} {
		t.Run(path, func(t *testing.T) {
			r := e.call(http.MethodGet, path, adminToken, nil)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", r.status)
			}
			if msg := r.apiError(t).Message; !strings.Contains(msg, "admin.token_file") {
				t.Errorf("message %q does not say to set admin.token_file", msg)
			}
		})
	}
	if r := e.call(http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("/healthz: status %d, want 200", r.status)
	}
}

// loadedCurrent is a Current holding a snapshot of one certificate, without a
// reloader.
func loadedCurrent(t *testing.T) *certconfig.Current {
	t.Helper()
	c, err := certconfig.BuildCertificate(certconfig.CertificateConfig{Name: "cfg",
		CertPEM: string(pki().cfg.CertPEM()), KeyPEM: string(pki().cfg.KeyPEM())}, "",
		certconfig.SourceConfig)
	if err != nil {
		t.Fatal(err)
	}
	cur := new(certconfig.Current)
	cur.Swap(&certconfig.Snapshot{Certificates: map[string]*certconfig.Certificate{"cfg": c},
		Names: []string{"cfg"}, LoadedAt: time.Now()})
	return cur
}

func TestNewChecksListenAndTokens(t *testing.T) {
	cur := new(certconfig.Current)
	tests := []struct {
		name          string
		listen        string
		token, read   string
		wantErr       string
		wantErrPrefix bool
	}{
		{"loopback without token", "127.0.0.1:9901", "", "", "", false},
		{"localhost without token", "localhost:9901", "", "", "", false},
		{"IPv6 loopback without token", "[::1]:9901", "", "", "", false},
		{"all interfaces without token", "0.0.0.0:9901", "", "",
			"admin.listen 0.0.0.0:9901 is not loopback and admin.token_file is not set; " +
				"set a token or listen on 127.0.0.1", false},
		{"empty host without token", ":9901", "", "", "is not loopback", true},
		{"read token only, all interfaces", "0.0.0.0:9901", "", "r", "is not loopback", true},
		{"name without token", "admin.internal:9901", "", "", "is not loopback", true},
		{"all interfaces with token", "0.0.0.0:9901", "t", "", "", false},
		{"same tokens", "127.0.0.1:9901", "t", "t", "the same token", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Current: cur, Listen: tc.listen, Token: tc.token,
				ReadToken: tc.read})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr == "":
			case err == nil:
				t.Fatalf("no error, want %q", tc.wantErr)
			case !tc.wantErrPrefix && err.Error() != tc.wantErr:
				t.Fatalf("error %q, want %q", err, tc.wantErr)
			case tc.wantErrPrefix && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewNeedsASnapshotSource(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Current or Reloader succeeded")
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, "")
	tests := []struct {
		method, path, allow string
	}{
		{"DELETE", "/v1/certificates", "GET, HEAD, POST"},
		{"PUT", "/v1/certificates/cfg", "DELETE, GET, HEAD"},
		{"GET", "/v1/certificates/cfg/material", "PUT"},
		{"GET", "/v1/certificates/cfg/enable", "POST"},
		{"DELETE", "/v1/certificates/cfg/disable", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"POST", "/readyz", "GET, HEAD"},
		{"PUT", "/metrics", "GET, HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.call(tc.method, tc.path, adminToken, nil)
			if r.status != http.StatusMethodNotAllowed {
				t.Fatalf("status %d, want 405; body %s", r.status, r.body)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if code := r.apiError(t).Code; code != CodeMethodNotAllowed {
				t.Errorf("code %q", code)
			}
		})
	}
}

func TestUnknownRouteIsNotFound(t *testing.T) {
	e := newEnv(t, "")
	r := e.mustStatus(e.call(http.MethodGet, "/v2/things", adminToken, nil), 404)
	if code := r.apiError(t).Code; code != CodeNotFound {
		t.Errorf("code %q", code)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Run("healthz needs no token", func(t *testing.T) {
		e := newEnv(t, "")
		var h HealthResponse
		e.mustStatus(e.call(http.MethodGet, "/healthz", "", nil), 200).decode(t, &h)
		if h.Status != "ok" {
			t.Errorf("status %q", h.Status)
		}
	})
	t.Run("readyz with a snapshot", func(t *testing.T) {
		e := newEnv(t, "")
		var h HealthResponse
		e.mustStatus(e.call(http.MethodGet, "/readyz", readToken, nil), 200).decode(t, &h)
		if h.Status != "ready" || h.Certificates == nil || *h.Certificates != 1 ||
			h.LastReload == nil || !h.LastReload.Success || h.LoadedAt == "" {
			t.Errorf("readiness %+v", h)
		}
	})
	t.Run("readyz before any snapshot", func(t *testing.T) {
		cur := new(certconfig.Current)
		cur.SetStatus(certconfig.ReloadStatus{At: time.Now(), Err: "config.toml: broken"})
		srv, err := New(Options{Current: cur, Token: adminToken, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		defer ts.Close()
		e := &env{t: t, ts: ts}
		var h HealthResponse
		e.mustStatus(e.call(http.MethodGet, "/readyz", adminToken, nil), 503).decode(t, &h)
		if h.Status != "not_ready" || h.LastReload == nil ||
			h.LastReload.Error != "config.toml: broken" {
			t.Errorf("readiness %+v", h)
		}
		r := e.mustStatus(e.call(http.MethodGet, "/v1/certificates", adminToken, nil), 503)
		if code := r.apiError(t).Code; code != CodeNotReady {
			t.Errorf("list before load: code %q", code)
		}
	})
}

func TestServeAndShutdown(t *testing.T) {
	srv, err := New(Options{Current: loadedCurrent(t), Token: adminToken, Logger: quiet,
		Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.srv
	if hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.WriteTimeout == 0 ||
		hs.IdleTimeout == 0 || hs.MaxHeaderBytes == 0 {
		t.Fatalf("server limits not all set: %+v", hs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after Shutdown, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9901", true},
		{"127.0.0.2:9901", true},
		{"[::1]:9901", true},
		{"localhost:9901", true},
		{"[::ffff:127.0.0.1]:9901", true},
		{"0.0.0.0:9901", false},
		{"[::]:9901", false},
		{":9901", false},
		{"10.0.0.1:9901", false},
		{"example.com:9901", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := isLoopback(tc.addr); got != tc.want {
				t.Errorf("isLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}
