// Package proxy is mtlsproxy's forward proxy. It takes plain HTTP requests in
// absolute form, picks the client certificate that belongs to each one (named by a
// request header, or by the first matching route), originates mutual TLS to the
// upstream with it and relays the exchange, streaming both ways. It keeps one
// connection pool per TLS identity, answers failed handshakes with stable error
// codes that say what to fix, and tunnels CONNECT unchanged. Every destination,
// of a request or a tunnel, passes the [egress] policy before it is dialled;
// [proxy] auth_file makes clients authenticate. Each request is logged on one
// line and counted in Prometheus metrics.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// Response headers the proxy adds.
const (
	// ErrorHeader carries the error code on every response the proxy makes itself.
	ErrorHeader = "X-Mtls-Proxy-Error"
	// WarningHeader says why a request went out without the certificate it named.
	WarningHeader = "X-Mtls-Proxy-Warning"
)

// DefaultCertHeader is the request header that names the certificate when
// [proxy] cert_header is not set.
const DefaultCertHeader = certconfig.DefaultCertHeader

// DialFunc opens a network connection, like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Options configure a Proxy.
type Options struct {
	// Current holds the snapshot in force; it is read once per request.
	Current *certconfig.Current
	// Logger receives one line per request; nil means slog.Default().
	Logger *slog.Logger
	// Dial, when set, replaces the TCP dialer for upstream connections and CONNECT
	// tunnels. It is only ever asked for addresses the egress policy allowed, as
	// "ip:port", and gets a context bounded by the configured dial timeout.
	Dial DialFunc
	// Lookup, when set, replaces the system resolver for the names the proxy
	// dials; every address it returns is checked against the egress policy.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Registerer, when set, receives the proxy's metrics: the mtlsproxy_requests,
	// request_duration, upstream TLS error, handshake, egress denial, in-flight and
	// open-connection series listed in metrics.go. Nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Observe, when set, is called once per request, after the response has been
	// written (for CONNECT: once the tunnel is open or refused).
	Observe func(Outcome)
}

// Proxy is the forward proxy. It is an http.Handler for the proxy listener.
type Proxy struct {
	cur     *certconfig.Current
	log     *slog.Logger
	observe func(Outcome)
	guards  *guards
	metrics *metrics
	pool    *pool
	engine  *goproxy.ProxyHttpServer
	// roundTripper is p.roundTrip as goproxy takes it, made once: a method value
	// made per request is an allocation per request.
	roundTripper goproxy.RoundTripper
	cutting      atomic.Bool // the server is closing requests still in flight
}

// New builds a Proxy reading its configuration from o.Current and subscribes to
// it, so that every Swap drops the connection pools of certificates that are gone,
// rereads the proxy users and applies the new egress policy.
func New(o Options) (*Proxy, error) {
	if o.Current == nil {
		return nil, errors.New("proxy: options: Current is required")
	}
	p := &Proxy{cur: o.Current, log: o.Logger, observe: o.Observe}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.metrics = newMetrics(o.Current)
	if err := p.metrics.register(o.Registerer); err != nil {
		return nil, fmt.Errorf("proxy: register metrics: %w", err)
	}
	p.guards = newGuards(o.Current, o.Dial, o.Lookup, p.log)
	p.pool = newPool(o.Current, p.dialer)
	p.engine = p.newEngine()
	p.roundTripper = goproxy.RoundTripperFunc(p.roundTrip)
	o.Current.Subscribe(p.pool.prune)
	o.Current.Subscribe(p.guards.swapped)
	o.Current.Subscribe(p.metrics.prune)
	return p, nil
}

// newEngine sets goproxy up so that everything it would decide on its own (the
// transport, its environment proxy settings, error pages) is decided here instead.
func (p *Proxy) newEngine() *goproxy.ProxyHttpServer {
	e := goproxy.NewProxyHttpServer()
	e.Logger = engineLog{p.log}
	e.KeepAcceptEncoding = true
	// Headers already set on the response writer (none today) survive; the
	// upstream's are added to them.
	e.KeepDestinationHeaders = true
	// Never consulted for HTTP (every request gets its own round tripper), but it
	// must not read HTTP_PROXY: a proxy that inherits its clients' environment
	// would send requests to itself.
	e.Tr = &http.Transport{Proxy: nil, DialContext: p.dialer(defaultDialTimeout)}
	e.ConnectDial = nil
	e.ConnectDialWithReq = p.dialTunnel
	e.ConnectionErrHandler = p.tunnelError
	e.NonproxyHandler = http.HandlerFunc(p.notProxyRequest)
	e.OnRequest().DoFunc(p.onRequest)
	e.OnRequest().HandleConnectFunc(p.onConnect)
	return e
}

// ServeHTTP handles one request to the proxy.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.metrics.inFlight.Inc()
	defer p.metrics.inFlight.Dec()
	ex := newExchange(p.cur.Load(), r)
	r = r.WithContext(withExchange(r.Context(), ex))
	if code := p.admit(ex, r); code != "" {
		rw := &responseWriter{ResponseWriter: w, ex: ex}
		ex.fail(code, nil)
		writeError(rw, ex)
		p.finish(ex, rw.status, rw.bytes)
		return
	}
	if r.Method == http.MethodConnect {
		p.engine.ServeHTTP(w, r)
		p.finish(ex, ex.tunnelStatus, 0)
		return
	}

	// Let the upstream answer while the request body is still arriving, and
	// count what the client sends.
	_ = http.NewResponseController(w).EnableFullDuplex()
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, n: &ex.bytesIn, err: &ex.bodyErr}
	}
	rw := &responseWriter{ResponseWriter: w, ex: ex}
	p.engine.ServeHTTP(rw, r)
	p.finish(ex, rw.status, rw.bytes)
}

// admit returns the code of a request the proxy refuses before looking at its
// target: no configuration yet, or a client that did not authenticate.
func (p *Proxy) admit(ex *exchange, r *http.Request) string {
	if ex.snap == nil {
		return CodeNotReady
	}
	g := p.guards.current()
	if g.auth == nil && g.authErr == nil {
		return ""
	}
	if g.authErr != nil {
		return CodeProxyAuthRequired
	}
	user, ok := g.auth.check(r.Header)
	if !ok {
		return CodeProxyAuthRequired
	}
	ex.user = user
	return ""
}

// Close closes the idle upstream connections of every pool. Requests in flight
// finish; later requests open new connections.
func (p *Proxy) Close() { p.pool.closeIdle() }

// CutInFlight says that the server is about to close the connections of requests
// still in flight, because the shutdown grace period is over. Those requests are
// then reported as cut by the proxy, not as abandoned by their clients.
func (p *Proxy) CutInFlight() { p.cutting.Store(true) }

func (p *Proxy) notProxyRequest(w http.ResponseWriter, r *http.Request) {
	ex := exchangeFrom(r.Context())
	ex.fail(CodeNotAProxyRequest, nil)
	writeError(w, ex)
}

// dialer returns the dial function for upstream connections, bounded by timeout:
// the egress policy in force at the time of the dial, over Options.Dial or a
// net.Dialer. Connections it opens are counted until they close.
func (p *Proxy) dialer(timeout time.Duration) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := p.guards.current().dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return p.metrics.track(conn), nil
	}
}

// engineLog sends goproxy's own chatter to the debug level.
type engineLog struct{ l *slog.Logger }

func (e engineLog) Printf(format string, v ...any) {
	e.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "goproxy")
}
