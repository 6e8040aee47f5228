package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Some servers finish the handshake with a client certificate they will refuse and
// answer in HTTP instead of with a TLS alert: nginx with ssl_verify_client on
// replies 400 with one of the pages below. Left alone, the sender would see a bare
// 400 with no hint that the certificate is the problem.
var answeredRejections = []string{
	"<title>400 No required SSL certificate was sent</title>",
	"<title>400 The SSL certificate error</title>",
}

// rejectionPeek is how much of a 400 body is read to look for those pages; nginx's
// are about 250 bytes.
const rejectionPeek = 1024

// errAnsweredRejection is logged when a server refused the certificate in HTTP.
var errAnsweredRejection = errors.New("the upstream completed the handshake and " +
	"answered 400 refusing the client certificate")

// answeredRejection reports whether resp is such a refusal. It reads at most
// rejectionPeek bytes of a TLS 400 HTML answer and puts them back in front of the
// body, so a response that is not a refusal passes unchanged.
func answeredRejection(resp *http.Response) bool {
	if resp.StatusCode != http.StatusBadRequest || resp.TLS == nil ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return false
	}
	head := make([]byte, rejectionPeek)
	n, _ := io.ReadFull(resp.Body, head) // a short body is the usual case
	head = head[:n]
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	for _, page := range answeredRejections {
		if bytes.Contains(head, []byte(page)) {
			return true
		}
	}
	return false
}

// rejectionByAnswer is the code for a refusal answered in HTTP: the server does not
// say why beyond "none sent" or "error", so the certificate presented decides.
func (ex *exchange) rejectionByAnswer() string {
	return rejectionCode(ex.cert, ex.sent, time.Now())
}
