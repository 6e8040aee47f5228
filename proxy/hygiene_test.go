package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// rawExchange writes request (with its target and Host filled in by format) to
// the proxy as it is, and returns the upstream's echo.
func rawExchange(t *testing.T, h *harness, request string) echo {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return decodeEcho(t, resp, body)
}

// TestRoutingHeaderNeverForwarded puts the routing header where a client could:
// in any case, named by Connection, and in the trailers of a chunked body.
func TestRoutingHeaderNeverForwarded(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	target := httpURL(up.URL) + "/in"
	host := strings.TrimPrefix(up.URL, "https://")
	cases := []struct {
		name, headers, body string
		trailers            []string // trailers the upstream must see
	}{
		{name: "upper case", headers: "X-MTLS-CLIENT-CERT: acme\r\n"},
		{name: "underscore spelling alongside",
			headers: "X-Mtls-Client-Cert: acme\r\nX_Mtls_Client_Cert: other\r\n"},
		{name: "named by Connection",
			headers: "Connection: x-mtls-client-cert\r\nx-mtls-client-cert: acme\r\n"},
		{name: "after other headers, twice",
			headers: "X-A: 1\r\nX-Mtls-Client-Cert: acme\r\nX-B: 2\r\n" +
				"x-mtls-client-cert: acme\r\n"},
		{name: "also in the trailers",
			headers: "X-Mtls-Client-Cert: acme\r\nTransfer-Encoding: chunked\r\n" +
				"Trailer: X-Mtls-Client-Cert, X-Checksum, Proxy-Authorization\r\n",
			body: "5\r\nhello\r\n0\r\nX-Mtls-Client-Cert: other\r\nX-Checksum: abc\r\n" +
				"Proxy-Authorization: Basic c2VjcmV0\r\n\r\n",
			trailers: []string{"X-Checksum"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("acme"), clientCert("other")}))
			e := rawExchange(t, h, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\n%s",
				target, host, tc.headers, tc.body))
			if e.ClientCN != "acme" {
				t.Errorf("upstream saw certificate %q", e.ClientCN)
			}
			for _, hdr := range []http.Header{e.Header, e.Trailer} {
				for k := range hdr {
					dashed := strings.ReplaceAll(k, "_", "-")
					if strings.EqualFold(dashed, DefaultCertHeader) || k == "Proxy-Authorization" {
						t.Errorf("upstream received %s", k)
					}
				}
			}
			if len(e.Trailer) != len(tc.trailers) {
				t.Errorf("upstream trailers %v, want %v", e.Trailer, tc.trailers)
			}
			for _, k := range tc.trailers {
				if e.Trailer.Get(k) == "" {
					t.Errorf("trailer %s lost: %v", k, e.Trailer)
				}
			}
		})
	}
}

func TestUpstreamHeaderLimit(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 100<<10)
	plain := plainUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", big)
		echoHandler(w, r)
	})
	cases := []struct {
		name  string
		limit int
		code  string
	}{
		{"default limit", 0, CodeUpstreamHeadersTooLarge},
		{"smaller than the headers", 32 << 10, CodeUpstreamHeadersTooLarge},
		{"raised", 256 << 10, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pc := certconfig.ProxyConfig{MaxHeaderBytes: tc.limit}
			h := newHarness(t, newSnapshot(t, pc, nil))
			resp, body := h.get(t, plain.URL)
			if tc.code != "" {
				checkError(t, resp, body, tc.code)
				return
			}
			if resp.StatusCode != http.StatusOK || len(resp.Header.Get("X-Big")) != len(big) {
				t.Errorf("status %d, X-Big of %d bytes", resp.StatusCode,
					len(resp.Header.Get("X-Big")))
			}
		})
	}
}

// TestSlowStreamOutlivesHeaderTimeout streams a body for longer than the
// response header timeout: only the wait for headers is bounded, not the body.
func TestSlowStreamOutlivesHeaderTimeout(t *testing.T) {
	t.Parallel()
	const chunks, gap = 8, 100 * time.Millisecond
	up := upstream{handler: func(w http.ResponseWriter, r *http.Request) {
		for i := range chunks {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(gap)
		}
	}}.start(t)
	pc := certconfig.ProxyConfig{
		ResponseHeaderTimeout: certconfig.Duration{Duration: 200 * time.Millisecond},
		IdleConnTimeout:       certconfig.Duration{Duration: 300 * time.Millisecond},
	}
	h := newHarness(t, newSnapshot(t, pc, []*certconfig.Certificate{clientCert("acme")}))
	start := time.Now()
	resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, "acme")
	if elapsed := time.Since(start); elapsed < chunks*gap {
		t.Fatalf("the stream took %v, less than the %v it should last", elapsed, chunks*gap)
	}
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), "chunk") != chunks {
		t.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	if o := h.lastOutcome(t); o.Code != "" {
		t.Errorf("outcome code %q", o.Code)
	}
}

func TestLimitsOf(t *testing.T) {
	t.Parallel()
	d := func(v time.Duration) certconfig.Duration { return certconfig.Duration{Duration: v} }
	cases := []struct {
		name string
		pc   certconfig.ProxyConfig
		want limits
	}{
		{"defaults", certconfig.ProxyConfig{}, limits{
			dial: defaultDialTimeout, handshake: defaultHandshakeTimeout,
			header: defaultResponseHeaderTimeout, idle: defaultIdleConnTimeout,
			maxIdlePerHost: defaultMaxIdleConnsPerHost,
			maxHeaderBytes: certconfig.DefaultMaxHeaderBytes,
			tunnelIdle:     certconfig.DefaultTunnelIdleTimeout}},
		{"configured", certconfig.ProxyConfig{DialTimeout: d(time.Second),
			TLSHandshakeTimeout: d(2 * time.Second), ResponseHeaderTimeout: d(3 * time.Second),
			IdleConnTimeout: d(4 * time.Second), MaxIdleConnsPerHost: 5, MaxHeaderBytes: 6,
			TunnelIdleTimeout: d(7 * time.Second)},
			limits{dial: time.Second, handshake: 2 * time.Second, header: 3 * time.Second,
				idle: 4 * time.Second, maxIdlePerHost: 5, maxHeaderBytes: 6,
				tunnelIdle: 7 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSnapshot(t, tc.pc, nil)
			if got := limitsOf(s); got != tc.want {
				t.Errorf("limitsOf = %+v, want %+v", got, tc.want)
			}
			tr := (&pool{dialer: func(time.Duration) DialFunc { return nil }}).build(
				identity{tls: true}, limitsOf(s))
			if tr.TLSHandshakeTimeout != tc.want.handshake ||
				tr.ResponseHeaderTimeout != tc.want.header || tr.IdleConnTimeout != tc.want.idle ||
				tr.MaxResponseHeaderBytes != tc.want.maxHeaderBytes {
				t.Errorf("transport timeouts %v %v %v, header limit %d", tr.TLSHandshakeTimeout,
					tr.ResponseHeaderTimeout, tr.IdleConnTimeout, tr.MaxResponseHeaderBytes)
			}
		})
	}
}

// TestNoUserAgentAdded: a request without User-Agent arrives without one; one with
// a User-Agent keeps it.
func TestNoUserAgentAdded(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	target := httpURL(up.URL) + "/ua"
	host := strings.TrimPrefix(up.URL, "https://")
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	for _, tc := range []struct{ header, want string }{
		{"", ""},
		{"User-Agent: hooks/1.0\r\n", "hooks/1.0"},
	} {
		e := rawExchange(t, h, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n"+
			"X-Mtls-Client-Cert: acme\r\n%s\r\n", target, host, tc.header))
		if got := e.Header.Get("User-Agent"); got != tc.want {
			t.Errorf("sent %q, upstream saw User-Agent %q", tc.header, got)
		}
		if _, ok := e.Header["User-Agent"]; ok != (tc.want != "") {
			t.Errorf("sent %q, upstream header present = %v", tc.header, ok)
		}
	}
}

// TestUpstreamCannotFakeProxyHeaders: the error and warning headers are the
// proxy's own; an upstream that sends them does not reach the client with them.
func TestUpstreamCannotFakeProxyHeaders(t *testing.T) {
	t.Parallel()
	up := upstream{handler: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(ErrorHeader, "fake_code")
		w.Header().Set(WarningHeader, "fake warning")
		_, _ = io.WriteString(w, "fine")
	}}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	resp, body := h.get(t, httpURL(up.URL)+"/", DefaultCertHeader, "acme")
	if resp.StatusCode != 200 || string(body) != "fine" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	for _, k := range []string{ErrorHeader, WarningHeader} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("client received %s: %q from the upstream", k, v)
		}
	}
}

// TestBrokenRequestBody: a body that breaks off or is badly chunked is the
// client's fault, answered 400, not a 502 that sends people to the upstream.
func TestBrokenRequestBody(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	target := httpURL(up.URL) + "/in"
	host := strings.TrimPrefix(up.URL, "https://")
	cases := []struct{ name, framing, body string }{
		{"bad chunk size", "Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"},
		{"shorter than declared", "Content-Length: 100000\r\n", strings.Repeat("x", 1000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("acme")}))
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nX-Mtls-Client-Cert: acme\r\n%s\r\n%s",
				target, host, tc.framing, tc.body)
			_ = conn.(*net.TCPConn).CloseWrite()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get(ErrorHeader) != CodeInvalidRequestBody {
				t.Fatalf("status %d, code %q", resp.StatusCode, resp.Header.Get(ErrorHeader))
			}
		})
	}
}
