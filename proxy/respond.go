package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mtlsproxy/mtlsproxy/proxy/egress"
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code        string `json:"code"`
	Message     string `json:"message"`
	Certificate string `json:"certificate"`
	Upstream    string `json:"upstream"`
}

func (ex *exchange) errorJSON() []byte {
	b, err := json.Marshal(errorBody{errorDetail{
		Code:        ex.code,
		Message:     ex.message(),
		Certificate: ex.certName,
		Upstream:    ex.upstream,
	}})
	if err != nil { // strings only: cannot happen
		b = []byte(`{"error":{"code":"` + ex.code + `"}}`)
	}
	return append(b, '\n')
}

// message is the text for ex.code. A refused destination is explained by the
// policy's own words, which name the address, the rule and how to allow it.
func (ex *exchange) message() string {
	if d, ok := errors.AsType[*egress.DeniedError](ex.err); ok && ex.code == CodeEgressDenied {
		return deniedMessage(d)
	}
	return Message(ex.code)
}

func (ex *exchange) errorHeader(length int) http.Header {
	h := make(http.Header)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(length))
	h.Set("Cache-Control", "no-store")
	h.Set(ErrorHeader, ex.code)
	if ex.code == CodeProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="`+AuthRealm+`"`)
	}
	if ex.warning != "" {
		h.Set(WarningHeader, ex.warning)
	}
	return h
}

// errorResponse is the proxy's own answer for ex.code, as a response for goproxy
// to relay.
func errorResponse(req *http.Request, ex *exchange) *http.Response {
	body := ex.errorJSON()
	status := Status(ex.code)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        ex.errorHeader(len(body)),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// writeError writes the proxy's own answer for ex.code to w.
func writeError(w http.ResponseWriter, ex *exchange) {
	body := ex.errorJSON()
	for k, v := range ex.errorHeader(len(body)) {
		w.Header()[k] = v
	}
	w.WriteHeader(Status(ex.code))
	_, _ = w.Write(body)
}
