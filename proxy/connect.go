package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/elazarl/goproxy"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// onConnect lets a CONNECT tunnel through unchanged, unless [proxy] connect is
// "deny". A tunnel carries the client's own TLS, so no certificate can be added:
// when one was asked for, the log says so and how to get it presented.
// goproxy copies a tunnel without deadlines; the upstream side is wrapped in an
// idleConn, so a tunnel silent in both directions is closed after
// [proxy] tunnel_idle_timeout.
func (p *Proxy) onConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	ex := exchangeFrom(ctx.Req.Context())
	ex.tunnel = true
	asked, target := tunnelTarget(host)
	ex.upstream = target
	if connectDenied(ex.snap) {
		return refuseTunnel(ex, ctx, CodeConnectDenied, nil), target
	}
	ex.noteTunnelCertificate(ctx.Req, target)
	if err := p.guards.current().checkHost(asked); err != nil {
		return refuseTunnel(ex, ctx, CodeEgressDenied, err), target
	}
	return goproxy.OkConnect, target
}

// tunnelTarget reads a CONNECT target: the host as asked, and the host:port to
// dial, on 443 when no port is given, with an address in an unusual spelling
// written the usual way (see canonicalHost).
func tunnelTarget(authority string) (asked, target string) {
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = strings.Trim(authority, "[]"), "443"
	}
	u := url.URL{Host: net.JoinHostPort(host, port)}
	canonicalHost(&u)
	return host, u.Host
}

// refuseTunnel answers a CONNECT with the proxy's own error for code.
func refuseTunnel(ex *exchange, ctx *goproxy.ProxyCtx, code string,
	err error) *goproxy.ConnectAction {
	ex.fail(code, err)
	ex.tunnelStatus = Status(code)
	ctx.Resp = errorResponse(ctx.Req, ex)
	return goproxy.RejectConnect
}

// noteTunnelCertificate records the certificate a CONNECT asked for, by header or
// by route, and the warning that it cannot be presented.
func (ex *exchange) noteTunnelCertificate(r *http.Request, hostport string) {
	ex.routed = true
	name, _ := takeCertName(r.Header, certHeaderOf(ex.snap))
	source := sourceHeader
	if name == "" {
		host, portText, _ := net.SplitHostPort(hostport)
		port, _ := strconv.Atoi(portText)
		rt := ex.snap.Route(certconfig.NormalizeHost(host), port)
		if rt == nil || rt.Certificate == "" {
			return
		}
		name, source = rt.Certificate, sourceRoute
	}
	ex.certName, ex.certSource = name, source
	ex.warning = fmt.Sprintf("certificate %q was not presented: a CONNECT tunnel cannot "+
		"carry a client certificate; send plain http:// requests through the proxy and "+
		"it will originate TLS with the certificate", name)
}

// tunnelDialError marks a failure to open the upstream side of a tunnel, as
// opposed to a failure inside a tunnel that is already open.
type tunnelDialError struct{ err error }

func (e *tunnelDialError) Error() string { return e.err.Error() }
func (e *tunnelDialError) Unwrap() error { return e.err }

func (p *Proxy) dialTunnel(req *http.Request, network, addr string) (net.Conn, error) {
	ex := exchangeFrom(req.Context())
	conn, err := p.dialer(limitsOf(ex.snap).dial)(req.Context(), network, addr)
	if err != nil {
		return nil, &tunnelDialError{err}
	}
	ex.tunnelStatus = http.StatusOK
	return newIdleConn(conn, limitsOf(ex.snap).tunnelIdle), nil
}

// tunnelError answers a CONNECT whose upstream could not be dialled with the
// proxy's own error. goproxy also calls it for failures inside an open tunnel,
// where nothing may be written: those are left to goproxy, which closes both ends.
func (p *Proxy) tunnelError(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	if _, ok := errors.AsType[*tunnelDialError](err); !ok {
		return
	}
	ex := exchangeFrom(ctx.Req.Context())
	ex.fail(Classify(err, nil, false), err)
	resp := errorResponse(ctx.Req, ex)
	ex.tunnelStatus = resp.StatusCode
	_ = resp.Write(w)
}
