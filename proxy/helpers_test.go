package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testlog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// pkiFixture is the set of CAs and certificates most tests share.
type pkiFixture struct {
	clientRoot  *testpki.Cert // the CA upstream servers trust for clients
	clientInter *testpki.Cert // an intermediate under clientRoot
	serverRoot  *testpki.Cert // the CA the proxy trusts for servers
	server      *testpki.Cert // 127.0.0.1, ::1, localhost, api.hooks.test
}

var fixture = sync.OnceValue(func() *pkiFixture {
	f := &pkiFixture{
		clientRoot: testpki.NewRoot("client root"),
		serverRoot: testpki.NewRoot("server root"),
	}
	f.clientInter = f.clientRoot.Intermediate("client intermediate")
	f.server = f.serverRoot.Server(testpki.Options{
		DNSNames: []string{"localhost", "api.hooks.test"},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	})
	return f
})

var certSeq atomic.Int64

// certOption adjusts a hand-built certificate.
type certOption func(*certconfig.Certificate)

func withServerName(n string) certOption {
	return func(c *certconfig.Certificate) { c.ServerName = n }
}

func disabled() certOption { return func(c *certconfig.Certificate) { c.Enabled = false } }

// withKey presents key instead of leaf's own: the server cannot verify the
// signature made with it.
func withKey(k *testpki.Cert) certOption {
	return func(c *certconfig.Certificate) { c.TLS.PrivateKey = k.Key }
}

// newCert builds what the loader would: leaf, then chain, as presented; the server
// verified against the fixture's server root. Every call gets a new ID.
func newCert(name string, leaf *testpki.Cert, chain []*testpki.Cert,
	opts ...certOption) *certconfig.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}
	var parsed []*x509.Certificate
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Cert.Raw)
		parsed = append(parsed, c.Cert)
	}
	c := &certconfig.Certificate{
		Name:          name,
		Enabled:       true,
		Source:        certconfig.SourceConfig,
		TLS:           tc,
		Subject:       leaf.Cert.Subject.String(),
		NotBefore:     leaf.Cert.NotBefore,
		NotAfter:      leaf.Cert.NotAfter,
		Chain:         parsed,
		ChainComplete: chainComplete(leaf.Cert, parsed),
		ServerCAs:     fixture().serverRoot.Pool(),
		ID:            fmt.Sprintf("%s#%d", name, certSeq.Add(1)),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// chainComplete follows the documented meaning of Certificate.ChainComplete.
func chainComplete(leaf *x509.Certificate, chain []*x509.Certificate) bool {
	cur := leaf
	for range len(chain) + 1 {
		if certconfig.IsSelfSigned(cur) {
			return true
		}
		var next *x509.Certificate
		for _, c := range chain {
			if cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			return false
		}
		cur = next
	}
	return false
}

// clientCert is a valid certificate under the client intermediate, chain included.
func clientCert(name string, opts ...certOption) *certconfig.Certificate {
	f := fixture()
	leaf := f.clientInter.Client(testpki.Options{CommonName: name})
	return newCert(name, leaf, []*testpki.Cert{f.clientInter}, opts...)
}

// loopbackEgress lets the proxy reach the test servers, which listen on
// loopback, while deny_private keeps refusing every other internal address.
func loopbackEgress() certconfig.EgressConfig {
	return certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8", "::1"}}
}

// newSnapshot builds a snapshot whose egress table allows loopback only.
func newSnapshot(t testing.TB, pc certconfig.ProxyConfig, certs []*certconfig.Certificate,
	routes ...certconfig.RouteConfig) *certconfig.Snapshot {
	t.Helper()
	s := &certconfig.Snapshot{
		Config:       &certconfig.Config{Proxy: pc, Egress: loopbackEgress()},
		Certificates: map[string]*certconfig.Certificate{},
		LoadedAt:     time.Now(),
	}
	for _, c := range certs {
		s.Certificates[c.Name] = c
		s.Names = append(s.Names, c.Name)
	}
	for _, rc := range routes {
		r, err := certconfig.CompileRoute(rc)
		if err != nil {
			t.Fatalf("route %+v: %v", rc, err)
		}
		s.Routes = append(s.Routes, r)
	}
	return s
}

// echo is what the test upstream saw of a request.
type echo struct {
	Proto      string
	Method     string
	Path       string
	Query      string
	Host       string
	Header     http.Header
	Trailer    http.Header
	ClientCN   string
	ChainLen   int
	ServerName string
	Version    uint16
	Resumed    bool
	BodyLen    int64
	RemoteAddr string
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	e := echo{Proto: r.Proto, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
		Header: r.Header, Trailer: r.Trailer, BodyLen: n, RemoteAddr: r.RemoteAddr}
	if r.TLS != nil {
		e.ServerName, e.Version, e.Resumed = r.TLS.ServerName, r.TLS.Version, r.TLS.DidResume
		if pc := r.TLS.PeerCertificates; len(pc) > 0 {
			e.ClientCN, e.ChainLen = pc[0].Subject.CommonName, len(pc)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(e)
}

// upstream describes a test server.
type upstream struct {
	maxVersion uint16
	clientAuth tls.ClientAuthType
	clientCAs  *x509.CertPool
	cert       *tls.Certificate
	forName    string // when set, serve only ClientHellos with this SNI
	http2      bool
	handler    http.HandlerFunc
	connState  func(net.Conn, http.ConnState)
}

// start runs u as a TLS server on loopback. By default it requires a client
// certificate from the client root and serves the fixture's server certificate.
func (u upstream) start(t testing.TB) *httptest.Server {
	t.Helper()
	f := fixture()
	h := u.handler
	if h == nil {
		h = echoHandler
	}
	cert := f.server.TLS()
	if u.cert != nil {
		cert = *u.cert
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    f.clientRoot.Pool(),
		MaxVersion:   u.maxVersion,
	}
	if u.clientAuth != 0 {
		cfg.ClientAuth = u.clientAuth
	}
	if u.clientCAs != nil {
		cfg.ClientCAs = u.clientCAs
	}
	if u.forName != "" {
		cfg.GetConfigForClient = onlyFor(u.forName, cfg.Clone())
	}
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = u.http2
	s.TLS = cfg
	s.Config.ConnState = u.connState
	s.Config.ErrorLog = quietLog()
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// onlyFor answers only ClientHellos for name; others get a config without
// certificates, which Go refuses with an unrecognized_name alert.
func onlyFor(name string, cfg *tls.Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	cfg.GetConfigForClient = nil
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hello.ServerName == name {
			return cfg, nil
		}
		return &tls.Config{MaxVersion: cfg.MaxVersion}, nil
	}
}

// plainUpstream runs h as a plain HTTP server on loopback.
func plainUpstream(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = quietLog()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// quietLog drops the "TLS handshake error" lines the refusing servers write.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// harness runs a Proxy behind a loopback HTTP server. Its resolver knows only
// the names given with withHost; its dialer reaches loopback only, and records
// every address it is asked for.
type harness struct {
	cur   *certconfig.Current
	proxy *Proxy
	srv   *httptest.Server
	logs  *syncBuffer
	reg   *prometheus.Registry

	mu       sync.Mutex
	outcomes []Outcome
	dials    []string
	names    map[string]netip.Addr // withHost names and the addresses they stand for
	dialTo   map[string]string     // stand-in ip:port -> the test server's address
}

type harnessOption func(*harness, *Options)

func withDial(d DialFunc) harnessOption {
	return func(_ *harness, o *Options) { o.Dial = d }
}

func withLookup(l func(context.Context, string) ([]netip.Addr, error)) harnessOption {
	return func(_ *harness, o *Options) { o.Lookup = l }
}

// withHost makes the proxy reach target when asked for name (host:port): the
// name resolves to a loopback stand-in address of its own, which the harness
// dialer turns into target.
func withHost(name, target string) harnessOption {
	return func(h *harness, _ *Options) {
		host, port, err := net.SplitHostPort(name)
		if err != nil {
			panic(err)
		}
		host = strings.ToLower(host)
		ip, ok := h.names[host]
		if !ok {
			ip = netip.AddrFrom4([4]byte{127, 0, 1, byte(len(h.names) + 1)})
			h.names[host] = ip
		}
		h.dialTo[net.JoinHostPort(ip.String(), port)] = target
	}
}

func newHarness(t testing.TB, s *certconfig.Snapshot, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{cur: &certconfig.Current{}, logs: &syncBuffer{},
		reg: prometheus.NewPedanticRegistry(), names: map[string]netip.Addr{},
		dialTo: map[string]string{}}
	if s != nil {
		h.cur.Swap(s)
	}
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	o := Options{
		Current:    h.cur,
		Logger:     slog.New(slog.NewJSONHandler(h.logs, debug)),
		Dial:       h.loopbackDial,
		Lookup:     h.lookup,
		Registerer: h.reg,
		Observe:    h.observe,
	}
	for _, opt := range opts {
		opt(h, &o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Requests without certificate settings verify upstreams against the system
	// roots; the test servers are signed by the fixture's server root instead.
	p.pool.roots = fixture().serverRoot.Pool()
	h.proxy = p
	h.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		h.srv.Close()
		p.Close()
	})
	return h
}

// lookup resolves the names given with withHost; any other name does not exist.
func (h *harness) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	if ip, ok := h.names[strings.ToLower(host)]; ok {
		return []netip.Addr{ip}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// loopbackDial rewrites stand-in addresses and refuses anything off loopback.
func (h *harness) loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	h.mu.Lock()
	h.dials = append(h.dials, addr)
	h.mu.Unlock()
	if to, ok := h.dialTo[addr]; ok {
		addr = to
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer: %s is not a loopback address", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// dialed returns the addresses the proxy has asked its dialer for.
func (h *harness) dialed() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.dials)
}

func (h *harness) observe(o Outcome) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.outcomes = append(h.outcomes, o)
}

// lastOutcome waits for a request to be reported and returns the latest report.
// The report comes after the response is written, so a client can finish first.
func (h *harness) lastOutcome(t *testing.T) Outcome {
	t.Helper()
	all := h.outcomesAtLeast(t, 1)
	return all[len(all)-1]
}

// outcomesAtLeast waits until n requests have been reported, then returns them all.
// Log lines are written before the report, so they are complete too.
func (h *harness) outcomesAtLeast(t *testing.T, n int) []Outcome {
	t.Helper()
	var all []Outcome
	waitFor(t, fmt.Sprintf("%d outcomes", n), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		all = append(all[:0], h.outcomes...)
		return len(all) >= n
	})
	return all
}

// client sends requests through the proxy.
func (h *harness) client() *http.Client {
	u, _ := url.Parse(h.srv.URL)
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(u)},
		Timeout:   20 * time.Second,
	}
}

// get sends a GET for rawURL through the proxy with the given header pairs.
func (h *harness) get(t *testing.T, rawURL string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return h.do(t, req)
}

func (h *harness) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	c := h.client()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// decodeEcho reads the upstream's echo from a 200 response.
func decodeEcho(t *testing.T, resp *http.Response, body []byte) echo {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode echo %q: %v", body, err)
	}
	return e
}

// proxyError is the JSON body of the proxy's own answers.
type proxyError struct {
	Error struct {
		Code        string `json:"code"`
		Message     string `json:"message"`
		Certificate string `json:"certificate"`
		Upstream    string `json:"upstream"`
	} `json:"error"`
}

// checkError asserts that the response is the proxy's answer for code.
func checkError(t *testing.T, resp *http.Response, body []byte, code string) proxyError {
	t.Helper()
	var pe proxyError
	if err := json.Unmarshal(body, &pe); err != nil {
		t.Fatalf("status %d, body %q is not a proxy error: %v", resp.StatusCode, body, err)
	}
	if pe.Error.Code != code || resp.Header.Get(ErrorHeader) != code {
		t.Fatalf("code %q (header %q), want %q; body %s", pe.Error.Code,
			resp.Header.Get(ErrorHeader), code, body)
	}
	if resp.StatusCode != Status(code) {
		t.Errorf("status %d, want %d", resp.StatusCode, Status(code))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if pe.Error.Message != Message(code) || pe.Error.Message == "" {
		t.Errorf("message %q, want %q", pe.Error.Message, Message(code))
	}
	return pe
}

// syncBuffer collects a logger's output for a test to read.
type syncBuffer struct{ testlog.Buffer }

// logLines decodes the JSON log lines whose message is msg.
func (s *syncBuffer) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
