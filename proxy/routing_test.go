package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// httpURL turns an httptest TLS server's URL into the plain http:// form a sender
// uses through the proxy.
func httpURL(s string) string { return strings.Replace(s, "https://", "http://", 1) }

func TestHeaderRouting(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	acme, other := clientCert("acme"), clientCert("other")
	cases := []struct {
		name   string
		pc     certconfig.ProxyConfig
		header []string
		wantCN string
	}{
		{"default header", certconfig.ProxyConfig{}, []string{"X-Mtls-Client-Cert", "acme"}, "acme"},
		{"lowercase spelling", certconfig.ProxyConfig{},
			[]string{"x-mtls-client-cert", "other"}, "other"},
		{"configured header", certconfig.ProxyConfig{CertHeader: "X-Which-Cert"},
			[]string{"x-which-cert", "acme"}, "acme"},
		{"same name twice", certconfig.ProxyConfig{},
			[]string{DefaultCertHeader, "acme", DefaultCertHeader, "acme"}, "acme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, tc.pc, []*certconfig.Certificate{acme, other}))
			resp, body := h.get(t, httpURL(up.URL)+"/hook?x=1", tc.header...)
			e := decodeEcho(t, resp, body)
			if e.ClientCN != tc.wantCN {
				t.Errorf("server saw certificate %q, want %q", e.ClientCN, tc.wantCN)
			}
			for k := range e.Header {
				if strings.EqualFold(k, tc.header[0]) {
					t.Errorf("routing header %s reached the upstream", k)
				}
			}
			if e.Path != "/hook" || e.Query != "x=1" || e.Method != http.MethodGet {
				t.Errorf("request changed: %+v", e)
			}
			if o := h.lastOutcome(t); o.Certificate != tc.wantCN || !o.Presented || !o.TLS {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}

func TestConflictingCertificateHeader(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme"), clientCert("other")}))
	for name, header := range map[string][]string{
		"two headers":   {DefaultCertHeader, "acme", DefaultCertHeader, "other"},
		"two spellings": {"X-Mtls-Client-Cert", "acme", "x-mtls-client-cert", "other"},
		"comma list":    {DefaultCertHeader, "acme, other"},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, httpURL(up.URL), nil)
			for i := 0; i < len(header); i += 2 {
				// Set the key as written, so that two spellings really are sent.
				req.Header[header[i]] = append(req.Header[header[i]], header[i+1])
			}
			resp, body := h.do(t, req)
			checkError(t, resp, body, CodeConflictingCertificateHeader)
		})
	}
}

func TestRouteRouting(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	plain := plainUpstream(t, echoHandler)
	upAddr := strings.TrimPrefix(up.URL, "https://")
	plainAddr := strings.TrimPrefix(plain.URL, "http://")
	routes := []certconfig.RouteConfig{
		{Host: "*.hooks.test", Certificate: "acme"},
		{Host: "127.0.0.1", Port: 1, Certificate: "other"},
	}
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme"), clientCert("other")}, routes...),
		withHost("api.hooks.test:443", upAddr), withHost("hooks.test:80", plainAddr))

	t.Run("wildcard matches, TLS on 443", func(t *testing.T) {
		resp, body := h.get(t, "http://API.hooks.test/in?a=b")
		e := decodeEcho(t, resp, body)
		if e.ClientCN != "acme" || !strings.EqualFold(e.ServerName, "api.hooks.test") {
			t.Errorf("server saw certificate %q for SNI %q", e.ClientCN, e.ServerName)
		}
		if e.Host != "API.hooks.test" || e.Query != "a=b" {
			t.Errorf("host %q query %q", e.Host, e.Query)
		}
		if o := h.lastOutcome(t); o.Upstream != "API.hooks.test:443" {
			t.Errorf("upstream %q", o.Upstream)
		}
	})
	t.Run("bare suffix does not match, stays plain", func(t *testing.T) {
		resp, body := h.get(t, "http://hooks.test/")
		e := decodeEcho(t, resp, body)
		if e.ClientCN != "" || e.Version != 0 {
			t.Errorf("plain request went over TLS: %+v", e)
		}
	})
	t.Run("route for another port does not match", func(t *testing.T) {
		resp, body := h.get(t, "http://"+plainAddr+"/")
		if e := decodeEcho(t, resp, body); e.Version != 0 {
			t.Errorf("went over TLS: %+v", e)
		}
	})
	t.Run("header wins over route", func(t *testing.T) {
		resp, body := h.get(t, "http://api.hooks.test/", DefaultCertHeader, "other")
		if e := decodeEcho(t, resp, body); e.ClientCN != "other" {
			t.Errorf("server saw %q", e.ClientCN)
		}
	})
}

func TestSNIOverride(t *testing.T) {
	t.Parallel()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			f := fixture()
			named := f.serverRoot.Server(testpki.Options{DNSNames: []string{"secure.internal"}})
			tc := named.TLS()
			up := upstream{maxVersion: ver.v, cert: &tc, forName: "secure.internal"}.start(t)
			c := clientCert("sni", withServerName("secure.internal"))
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{c}))
			resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, "sni")
			e := decodeEcho(t, resp, body)
			if e.ServerName != "secure.internal" || e.ClientCN != "sni" || e.Version != ver.v {
				t.Errorf("server saw SNI %q, certificate %q, version %x",
					e.ServerName, e.ClientCN, e.Version)
			}
		})
	}
}

func TestChainPresented(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t) // trusts the client root only
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("chained")}))
	resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, "chained")
	if e := decodeEcho(t, resp, body); e.ClientCN != "chained" || e.ChainLen != 2 {
		t.Errorf("server saw %q with %d certificates, want leaf and intermediate",
			e.ClientCN, e.ChainLen)
	}
}

func TestCertificateNotPresented(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven}.start(t)
	cases := []struct {
		name, header, warning string
	}{
		{"disabled", "off", `certificate "off" is disabled; sent without a client certificate`},
		{"unknown", "ghost", `certificate "ghost" does not exist; sent without a client certificate`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("off", disabled())}))
			resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, tc.header)
			e := decodeEcho(t, resp, body)
			if e.ClientCN != "" || e.Version == 0 {
				t.Errorf("want TLS without a certificate, server saw %q over %x", e.ClientCN, e.Version)
			}
			if got := resp.Header.Get(WarningHeader); got != tc.warning {
				t.Errorf("warning header %q, want %q", got, tc.warning)
			}
			h.lastOutcome(t)
			lines := h.logs.logLines(t, "request")
			if len(lines) != 1 || lines[0]["warning"] != tc.warning || lines[0]["level"] != "WARN" {
				t.Errorf("log lines %v", lines)
			}
		})
	}
}

// TestHopByHopHeaders writes the request by hand, so that every header arrives
// exactly as a client could send it.
func TestHopByHopHeaders(t *testing.T) {
	t.Parallel()
	plain := plainUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End-To-End", "kept")
		echoHandler(w, r)
	})
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil))
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := plain.URL + "/p?q=1"
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n"+
		"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\n"+
		"Proxy-Authorization: Basic c2VjcmV0\r\nAuthorization: Bearer end-to-end\r\n"+
		"Accept-Encoding: gzip\r\nX-Custom: yes\r\n\r\n",
		target, strings.TrimPrefix(plain.URL, "http://"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	e := decodeEcho(t, resp, body)

	for _, gone := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Connection",
		"Te", "Upgrade", "Proxy-Authorization"} {
		if v, ok := e.Header[gone]; ok {
			t.Errorf("upstream received %s: %q", gone, v)
		}
	}
	for k, want := range map[string]string{"Authorization": "Bearer end-to-end",
		"Accept-Encoding": "gzip", "X-Custom": "yes"} {
		if got := e.Header.Get(k); got != want {
			t.Errorf("upstream received %s %q, want %q", k, got, want)
		}
	}
	if resp.Header.Get("X-Resp-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response headers relayed: %v", resp.Header)
	}
	if resp.Header.Get("X-End-To-End") != "kept" {
		t.Errorf("end-to-end response header lost: %v", resp.Header)
	}
	h.lastOutcome(t)
	if logs := h.logs.String(); strings.Contains(logs, "c2VjcmV0") ||
		strings.Contains(logs, "end-to-end") {
		t.Errorf("credentials in the log: %s", logs)
	}
}

func TestOriginFormRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil))
	resp, err := http.Get(h.srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	checkError(t, resp, body, CodeNotAProxyRequest)
	if !strings.Contains(string(body), "HTTP_PROXY") {
		t.Errorf("body does not explain how to use the proxy: %s", body)
	}
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	resp, body := h.get(t, "http://127.0.0.1:1/")
	checkError(t, resp, body, CodeNotReady)
}

func TestObserveOncePerRequest(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	req, _ := http.NewRequest(http.MethodPost, httpURL(up.URL), strings.NewReader("12345"))
	req.Header.Set(DefaultCertHeader, "acme")
	resp, body := h.do(t, req)
	decodeEcho(t, resp, body)

	outcomes := h.outcomesAtLeast(t, 1)
	if len(outcomes) != 1 {
		t.Fatalf("%d outcomes, want 1", len(outcomes))
	}
	o := outcomes[0]
	if o.Certificate != "acme" || o.Status != 200 || o.Code != "" || !o.TLS || !o.Handshake ||
		o.BytesIn != 5 || o.BytesOut != int64(len(body)) || o.Method != http.MethodPost {
		t.Errorf("outcome %+v", o)
	}
	lines := h.logs.logLines(t, "request")
	if len(lines) != 1 || lines[0]["level"] != "INFO" || lines[0]["certificate"] != "acme" {
		t.Errorf("log lines %v", lines)
	}
	for _, field := range []string{"method", "host", "upstream", "tls", "status", "error_code",
		"duration_ms", "bytes_in", "bytes_out", "resumed"} {
		if _, ok := lines[0][field]; !ok {
			t.Errorf("log line lacks %s: %v", field, lines[0])
		}
	}
}
