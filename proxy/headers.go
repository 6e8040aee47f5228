package proxy

import (
	"errors"
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
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
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
			for _, item := range strings.Split(v, ",") {
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
