package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/elazarl/goproxy"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// onRequest runs for every absolute-form request: it picks the certificate and the
// upstream, cleans the headers, and hands the request to the round tripper of the
// matching pool. A request it refuses is answered here and never sent.
func (p *Proxy) onRequest(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ex := exchangeFrom(r.Context())
	if code := ex.decide(r); code != "" {
		ex.fail(code, nil)
		return r, errorResponse(r, ex)
	}
	stripHopByHop(r.Header)
	// The client's wish to close its own connection says nothing about ours.
	r.Close = false
	ex.transport = p.pool.transport(ex.snap, identityOf(ex))
	ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
	return r, nil
}

// decide applies the routing rules: the certificate header wins, else the first
// matching route; a certificate, a TLS route or an https:// URL means TLS
// upstream, on port 443 unless the URL names a port. It rewrites r.URL and
// returns an error code when the request cannot be sent.
func (ex *exchange) decide(r *http.Request) string {
	u := r.URL
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return CodeInvalidTarget
	}
	port := defaultPort(u.Scheme)
	if s := u.Port(); s != "" {
		port, _ = strconv.Atoi(s)
	}
	ex.upstream = net.JoinHostPort(u.Hostname(), strconv.Itoa(port))

	name, err := takeCertName(r.Header, certHeaderOf(ex.snap))
	if err != nil {
		return CodeConflictingCertificateHeader
	}
	routeTLS := false
	if name != "" {
		ex.certSource = sourceHeader
	} else if rt := ex.snap.Route(certconfig.NormalizeHost(u.Hostname()), port); rt != nil {
		name, routeTLS = rt.Certificate, rt.TLS
		if name != "" {
			ex.certSource = sourceRoute
		}
	}
	ex.choose(name)

	ex.useTLS = name != "" || routeTLS || u.Scheme == "https"
	if ex.useTLS && u.Scheme == "http" {
		u.Scheme = "https"
		if u.Port() == "" {
			ex.upstream = net.JoinHostPort(u.Hostname(), "443")
		}
	}
	return ""
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
