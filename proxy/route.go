package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/elazarl/goproxy"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/proxy/egress"
)

// onRequest runs for every absolute-form request: it picks the certificate and the
// upstream, applies the egress policy to the host, cleans the headers, and hands
// the request to the round tripper of the matching pool. A request it refuses is
// answered here and never sent.
func (p *Proxy) onRequest(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ex := exchangeFrom(r.Context())
	if code := ex.decide(r); code != "" {
		ex.fail(code, nil)
		return r, errorResponse(r, ex)
	}
	// The addresses a name resolves to are checked when it is dialled.
	if err := p.guards.current().checkHost(ex.host); err != nil {
		ex.fail(CodeEgressDenied, err)
		return r, errorResponse(r, ex)
	}
	header := certHeaderOf(ex.snap)
	dropFields(r.Header, header)
	keepUserAgentAbsent(r.Header)
	filterTrailers(r, header)
	// The client's wish to close its own connection says nothing about ours.
	r.Close = false
	ex.transport = p.pool.transport(ex.snap, identityOf(ex))
	ctx.RoundTripper = p.roundTripper
	return r, nil
}

// decide applies the routing rules: the certificate header wins, else the first
// matching route; a certificate, a TLS route or an https:// URL means TLS
// upstream. It rewrites r.URL and returns an error code when the request cannot
// be sent.
func (ex *exchange) decide(r *http.Request) string {
	port, ok := targetPort(r.URL)
	if !ok {
		return CodeInvalidTarget
	}
	canonicalHost(r.URL)
	ex.upstream = net.JoinHostPort(r.URL.Hostname(), strconv.Itoa(port))

	name, routeTLS, err := ex.certificateName(r, port)
	if err != nil {
		return CodeConflictingCertificateHeader
	}
	ex.choose(name)

	ex.useTLS = name != "" || routeTLS || r.URL.Scheme == "https"
	if ex.useTLS && r.URL.Scheme == "http" {
		ex.upgrade(r.URL)
	}
	return ""
}

// canonicalHost rewrites a host that spells an IP address in an unusual form
// ("2130706433", "0x7f.1", "127.1") as that address, the way resolvers read it, so
// that routes, TLS verification and the dial all see the address that the egress
// policy checks.
func canonicalHost(u *url.URL) {
	host := u.Hostname()
	ip, ok := egress.ParseHostIP(host)
	if !ok || ip.String() == host {
		return
	}
	switch {
	case u.Port() != "":
		u.Host = net.JoinHostPort(ip.String(), u.Port())
	case ip.Is6():
		u.Host = "[" + ip.String() + "]"
	default:
		u.Host = ip.String()
	}
}

// targetPort returns the port an absolute http:// or https:// URL asks for.
func targetPort(u *url.URL) (int, bool) {
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return 0, false
	}
	if u.Port() == "" {
		return defaultPort(u.Scheme), true
	}
	port, err := strconv.Atoi(u.Port())
	return port, err == nil && port > 0 && port <= 65535
}

// certificateName removes the certificate header and returns the name it
// carries, or else the certificate and TLS switch of the first matching route.
func (ex *exchange) certificateName(r *http.Request, port int) (string, bool, error) {
	name, err := takeCertName(r.Header, certHeaderOf(ex.snap))
	if err != nil {
		return "", false, err
	}
	ex.routed = true
	if name != "" {
		ex.certSource = sourceHeader
		return name, false, nil
	}
	rt := ex.snap.Route(certconfig.NormalizeHost(r.URL.Hostname()), port)
	if rt == nil {
		return "", false, nil
	}
	if rt.Certificate != "" {
		ex.certSource = sourceRoute
	}
	return rt.Certificate, rt.TLS, nil
}

// upgrade sends an http:// request over TLS, on port 443 unless the URL names one.
func (ex *exchange) upgrade(u *url.URL) {
	u.Scheme = "https"
	if u.Port() == "" {
		ex.upstream = net.JoinHostPort(u.Hostname(), "443")
	}
}

// choose looks the certificate up. A missing or disabled one is not presented; the
// request still goes, and the warning says why.
func (ex *exchange) choose(name string) {
	if name == "" {
		return
	}
	ex.certName = name
	c, ok := ex.snap.Certificate(name)
	switch {
	case !ok:
		ex.warning = fmt.Sprintf(
			"certificate %q does not exist; sent without a client certificate", name)
	case !c.Enabled:
		ex.cert = c
		ex.warning = fmt.Sprintf(
			"certificate %q is disabled; sent without a client certificate", name)
	default:
		ex.cert, ex.sent = c, true
	}
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}
