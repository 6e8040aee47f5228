package proxy

import (
	"net/http"
	"net/http/httptrace"

	"github.com/elazarl/goproxy"
)

// roundTrip sends the request through the transport onRequest chose. A failure
// becomes the proxy's own 502/504 answer, never goproxy's 500 with the raw error.
func (p *Proxy) roundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	ex := exchangeFrom(req.Context())
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), ex.hs.trace()))
	resp, err := ex.transport.RoundTrip(req)
	if err != nil {
		if bodyErr := ex.bodyError(); bodyErr != nil {
			ex.fail(CodeInvalidRequestBody, bodyErr)
			return errorResponse(req, ex), nil
		}
		ex.fail(Classify(ex.hs.annotate(err), ex.cert, ex.sent), err)
		return errorResponse(req, ex), nil
	}
	if answeredRejection(resp) {
		resp.Body.Close()
		ex.fail(ex.rejectionByAnswer(), errAnsweredRejection)
		return errorResponse(req, ex), nil
	}
	ex.received(resp)
	return resp, nil
}

// received prepares the upstream's response for the client.
func (ex *exchange) received(resp *http.Response) {
	stripHopByHop(resp.Header)
	// Only the proxy sets its own headers: an upstream must not fake an error code
	// or a warning that clients act on.
	resp.Header.Del(ErrorHeader)
	resp.Header.Del(WarningHeader)
	if ex.warning != "" {
		resp.Header.Set(WarningHeader, ex.warning)
	}
	ex.unknownLength = resp.ContentLength < 0
	if resp.TLS != nil {
		ex.resumed = resp.TLS.DidResume
	}
	resp.Body = &upstreamBody{ReadCloser: resp.Body, ex: ex}
}
