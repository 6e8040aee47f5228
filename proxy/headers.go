package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// hopHeaders apply to one connection only and are never relayed, in either
// direction (RFC 9110 section 7.6.1). goproxy removes only some of them.
var hopHeaders = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authorization",
	"Proxy-Authenticate",
	"Te",
	"Upgrade",
}

// stripHopByHop removes the hop-by-hop headers from h, including those that the
// Connection header names.
func stripHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name) // the names above are in canonical form
	}
}

// filterTrailers keeps the certificate header and hop-by-hop fields out of the
// request's trailers. A declared trailer is sent on as the server fills it in at
// the end of the body, so the fields are removed both now, from the declaration,
// and at the end of the body, from what arrived.
func filterTrailers(r *http.Request, certHeader string) {
	if r.Trailer == nil || r.Body == nil {
		return
	}
	dropFields(r.Trailer, certHeader)
	r.Body = &trailerFilter{ReadCloser: r.Body, trailer: r.Trailer, certHeader: certHeader}
}

func dropFields(h http.Header, certHeader string) {
	for key := range h {
		if isCertHeader(key, certHeader) {
			delete(h, key)
		}
	}
	stripHopByHop(h)
}

// isCertHeader reports whether key names the certificate header, also when it is
// spelled with underscores: servers behind CGI-style gateways read "X_Mtls_..." as
// "X-Mtls-...", so such a copy must not reach them either.
func isCertHeader(key, certHeader string) bool {
	return strings.EqualFold(key, certHeader) ||
		strings.EqualFold(strings.ReplaceAll(key, "_", "-"), certHeader)
}

// keepUserAgentAbsent stops the Go client from adding its own User-Agent when the
// sender sent none: a present but empty value is not written.
func keepUserAgentAbsent(h http.Header) {
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
}

type trailerFilter struct {
	io.ReadCloser
	trailer    http.Header
	certHeader string
}

func (f *trailerFilter) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if err == io.EOF {
		dropFields(f.trailer, f.certHeader)
	}
	return n, err
}

var errConflictingNames = errors.New("the certificate header names more than one certificate")

// takeCertName removes every copy of the header called name (whatever the case of
// its spelling) and returns the certificate name they carry. Copies that repeat
// the same name are fine; copies, or comma-separated items, that name different
// certificates are an error. Empty values name nothing.
func takeCertName(h http.Header, name string) (string, error) {
	var found string
	var err error
	for key, values := range h {
		if !strings.EqualFold(key, name) {
			continue
		}
		delete(h, key)
		for _, v := range values {
			for item := range strings.SplitSeq(v, ",") {
				item = textproto.TrimString(item)
				switch {
				case item == "" || item == found:
				case found == "":
					found = item
				default:
					err = errConflictingNames
				}
			}
		}
	}
	return found, err
}
