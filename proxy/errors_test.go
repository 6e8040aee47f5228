package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// tlsErrorCase is an upstream that refuses the exchange, and the code it must give.
type tlsErrorCase struct {
	name   string
	code   string
	server upstream
	// cert is presented under the name "c"; nil sends none (a TLS route instead).
	cert func() *certconfig.Certificate
	// clientSide cases are the server rejecting our certificate; they are also run
	// with a large body, which in TLS 1.3 can hide the server's alert.
	clientSide bool
}

func tlsErrorCases() []tlsErrorCase {
	f := fixture()
	other := testpki.NewRoot("other root")
	otherInter := other.Intermediate("other intermediate")
	serverInter := f.serverRoot.Intermediate("server intermediate")
	loop := []net.IP{net.IPv4(127, 0, 0, 1)}
	day := 24 * time.Hour
	now := time.Now()

	tlsOf := func(c *testpki.Cert) *tls.Certificate { tc := c.TLS(); return &tc }
	leafOnly := func(c *testpki.Cert) *tls.Certificate {
		return &tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}
	}
	good := func() *certconfig.Certificate { return clientCert("c") }
	client := func(o testpki.Options, chain ...*testpki.Cert) func() *certconfig.Certificate {
		return func() *certconfig.Certificate {
			return newCert("c", f.clientInter.Client(o), chain)
		}
	}

	return []tlsErrorCase{
		{name: "server certificate for another name", code: CodeHostnameMismatch,
			server: upstream{cert: tlsOf(f.serverRoot.Server(testpki.Options{
				DNSNames: []string{"elsewhere.test"}}))},
			cert: good},
		{name: "server certificate expired", code: CodeUpstreamCertificateExpired,
			server: upstream{cert: tlsOf(f.serverRoot.Server(testpki.Options{
				IPs: loop, NotBefore: now.Add(-2 * day), NotAfter: now.Add(-day)}))},
			cert: good},
		{name: "server certificate not yet valid", code: CodeUpstreamCertificateNotYetValid,
			server: upstream{cert: tlsOf(f.serverRoot.Server(testpki.Options{
				IPs: loop, NotBefore: now.Add(day), NotAfter: now.Add(2 * day)}))},
			cert: good},
		{name: "server certificate self-signed", code: CodeSelfSignedCertificate,
			server: upstream{cert: tlsOf(testpki.SelfSigned(testpki.Options{IPs: loop}))},
			cert:   good},
		{name: "server chain from an untrusted CA", code: CodeUpstreamCertificateUntrusted,
			server: upstream{cert: tlsOf(otherInter.Server(testpki.Options{IPs: loop}))},
			cert:   good},
		{name: "server leaf without its intermediate", code: CodeUpstreamCertificateUntrusted,
			server: upstream{cert: leafOnly(serverInter.Server(testpki.Options{IPs: loop}))},
			cert:   good},
		{name: "server does not trust the client CA", code: CodeCertificateUntrusted,
			server:     upstream{clientCAs: other.Pool()},
			cert:       client(testpki.Options{CommonName: "c"}, f.clientInter, f.clientRoot),
			clientSide: true},
		{name: "client leaf without its intermediate", code: CodeIncompleteChain,
			server:     upstream{},
			cert:       client(testpki.Options{CommonName: "c"}),
			clientSide: true},
		{name: "client certificate expired", code: CodeCertificateExpired,
			server: upstream{},
			cert: client(testpki.Options{CommonName: "c",
				NotBefore: now.Add(-2 * day), NotAfter: now.Add(-day)}, f.clientInter),
			clientSide: true},
		{name: "client certificate not yet valid", code: CodeCertificateNotYetValid,
			server: upstream{},
			cert: client(testpki.Options{CommonName: "c",
				NotBefore: now.Add(day), NotAfter: now.Add(2 * day)}, f.clientInter),
			clientSide: true},
		{name: "client key does not match its certificate", code: CodeBadCertificateSignature,
			server: upstream{},
			cert: func() *certconfig.Certificate {
				stranger := f.clientInter.Client(testpki.Options{CommonName: "stranger"})
				return clientCert("c", withKey(stranger))
			},
			clientSide: true},
		{name: "server wants another SNI", code: CodeTLSProtocol,
			server: upstream{forName: "secure.internal"},
			cert:   good},
		{name: "no certificate sent", code: CodeClientCertificateRequired,
			server:     upstream{},
			clientSide: true},
		{name: "disabled certificate", code: CodeClientCertificateRequired,
			server:     upstream{},
			cert:       func() *certconfig.Certificate { return clientCert("c", disabled()) },
			clientSide: true},
	}
}

func TestTLSErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range tlsErrorCases() {
		for _, ver := range versions {
			t.Run(tc.name+"/"+ver.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, ver.v, 0)
				if tc.clientSide {
					tc.run(t, ver.v, 8<<20)
				}
			})
		}
	}
}

// run sends one request with a body of size bytes and checks the proxy's answer.
func (tc tlsErrorCase) run(t *testing.T, version uint16, size int64) {
	t.Helper()
	srv := tc.server
	srv.maxVersion = version
	up := srv.start(t)
	addr := strings.TrimPrefix(up.URL, "https://")

	var certs []*certconfig.Certificate
	var header []string
	if tc.cert != nil {
		certs = append(certs, tc.cert())
		header = []string{DefaultCertHeader, "c"}
	}
	route := certconfig.RouteConfig{Host: "127.0.0.1", TLS: true}
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, certs, route))

	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hook", bodyOf(size))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, body := h.do(t, req)
	pe := checkError(t, resp, body, tc.code)
	if pe.Error.Upstream != addr {
		t.Errorf("upstream %q, want %q", pe.Error.Upstream, addr)
	}
	if tc.cert != nil && pe.Error.Certificate != "c" {
		t.Errorf("certificate %q, want c", pe.Error.Certificate)
	}
	if o := h.lastOutcome(t); o.Code != tc.code || o.Status != resp.StatusCode {
		t.Errorf("outcome %+v", o)
	}
}

// bodyOf streams size zero bytes without allocating them.
func bodyOf(size int64) io.Reader {
	if size == 0 {
		return nil
	}
	return io.LimitReader(zeros{}, size)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestLostAlertTLS13 checks the TLS 1.3 rule for a server that accepts the
// handshake and then hangs up without saying why: the certificate presented
// decides the code.
func TestLostAlertTLS13(t *testing.T) {
	t.Parallel()
	f := fixture()
	day := 24 * time.Hour
	expired := f.clientInter.Client(testpki.Options{CommonName: "old",
		NotBefore: time.Now().Add(-2 * day), NotAfter: time.Now().Add(-day)})
	cases := []struct {
		name string
		cert *certconfig.Certificate
		code string
	}{
		{"no certificate", nil, CodeClientCertificateRequired},
		{"expired certificate", newCert("c", expired, nil), CodeCertificateExpired},
		{"complete chain", clientCert("c", func(c *certconfig.Certificate) {
			c.ChainComplete = true
		}), CodeCertificateUntrusted},
		{"incomplete chain", clientCert("c", func(c *certconfig.Certificate) {
			c.ChainComplete = false
		}), CodeIncompleteChain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := hangUpServer(t)
			var certs []*certconfig.Certificate
			var header []string
			if tc.cert != nil {
				certs, header = append(certs, tc.cert), []string{DefaultCertHeader, "c"}
			}
			route := certconfig.RouteConfig{Host: "127.0.0.1", TLS: true}
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, certs, route))
			resp, body := h.get(t, "http://"+addr+"/", header...)
			checkError(t, resp, body, tc.code)
		})
	}
}

// hangUpServer completes TLS 1.3 handshakes that ask for a client certificate,
// then closes the connection without an alert.
func hangUpServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	cfg := &tls.Config{
		Certificates: []tls.Certificate{fixture().server.TLS()},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = tls.Server(c, cfg).HandshakeContext(ctx)
			}()
		}
	}()
	return l.Addr().String()
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	stall := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	short := certconfig.Duration{Duration: 300 * time.Millisecond}
	cases := []struct {
		name   string
		target func(t *testing.T) string
		pc     certconfig.ProxyConfig
		dial   DialFunc
		code   string
	}{
		{"refused", closedPort, certconfig.ProxyConfig{}, nil, CodeUpstreamConnectionRefused},
		{"TLS to a plain HTTP port", func(t *testing.T) string {
			return strings.TrimPrefix(plainUpstream(t, echoHandler).URL, "http://")
		}, certconfig.ProxyConfig{}, nil, CodeTLSProtocol},
		{"handshake never answered", silentServer,
			certconfig.ProxyConfig{TLSHandshakeTimeout: short}, nil, CodeUpstreamTimeout},
		{"dial never completes", closedPort,
			certconfig.ProxyConfig{DialTimeout: short}, stall, CodeUpstreamTimeout},
		// The harness resolver knows no such name.
		{"name does not resolve", func(*testing.T) string { return "nowhere.test:443" },
			certconfig.ProxyConfig{}, nil, CodeUpstreamUnresolvable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := tc.target(t)
			var opts []harnessOption
			if tc.dial != nil {
				opts = append(opts, withDial(tc.dial))
			}
			c := clientCert("c")
			h := newHarness(t, newSnapshot(t, tc.pc, []*certconfig.Certificate{c}), opts...)
			resp, body := h.get(t, "http://"+target+"/", DefaultCertHeader, "c")
			pe := checkError(t, resp, body, tc.code)
			if pe.Error.Upstream != target {
				t.Errorf("upstream %q, want %q", pe.Error.Upstream, target)
			}
		})
	}
}

// TestResponseHeaderTimeout uses an upstream that takes the request and never
// answers.
func TestResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			up := upstream{maxVersion: ver.v, handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}}.start(t)
			pc := certconfig.ProxyConfig{
				ResponseHeaderTimeout: certconfig.Duration{Duration: 300 * time.Millisecond}}
			h := newHarness(t, newSnapshot(t, pc, []*certconfig.Certificate{clientCert("c")}))
			resp, body := h.get(t, strings.Replace(up.URL, "https", "http", 1),
				DefaultCertHeader, "c")
			checkError(t, resp, body, CodeUpstreamTimeout)
		})
	}
}

// silentServer accepts connections and never writes a byte.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		_ = l.Close()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestErrorBodyNamesCertificateAndUpstream(t *testing.T) {
	t.Parallel()
	target := closedPort(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	resp, body := h.get(t, "http://"+target+"/x", DefaultCertHeader, "acme")
	want := fmt.Sprintf(`{"error":{"code":%q,"message":%q,"certificate":"acme","upstream":%q}}`,
		CodeUpstreamConnectionRefused, Message(CodeUpstreamConnectionRefused), target)
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestHTTP2Upstream checks that HTTP/2 is used when the upstream offers it, and
// that its different error paths give the same codes.
func TestHTTP2Upstream(t *testing.T) {
	t.Parallel()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			up := upstream{maxVersion: ver.v, http2: true}.start(t)
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("c")},
				certconfig.RouteConfig{Host: "127.0.0.1", TLS: true}))
			resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, "c")
			if e := decodeEcho(t, resp, body); e.Proto != "HTTP/2.0" || e.ClientCN != "c" {
				t.Errorf("upstream saw %s with certificate %q", e.Proto, e.ClientCN)
			}
			resp, body = h.get(t, httpURL(up.URL))
			checkError(t, resp, body, CodeClientCertificateRequired)
		})
	}
}

// TestProtocolVersion uses a server that stops at TLS 1.1, below the proxy's
// minimum: it refuses the handshake with a protocol_version alert.
func TestProtocolVersion(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	s.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
		Certificates: []tls.Certificate{fixture().server.TLS()}}
	s.Config.ErrorLog = quietLog()
	s.StartTLS()
	t.Cleanup(s.Close)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("c")}))
	resp, body := h.get(t, httpURL(s.URL), DefaultCertHeader, "c")
	checkError(t, resp, body, CodeTLSProtocol)
	h.lastOutcome(t)
	lines := h.logs.logLines(t, "request")
	if len(lines) != 1 {
		t.Fatalf("log lines %v", lines)
	}
	if msg, _ := lines[0]["error"].(string); !strings.Contains(msg, "protocol version") {
		t.Errorf("logged error %q", msg)
	}
}
