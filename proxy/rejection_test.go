package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// nginxLike answers the way nginx with ssl_verify_client on does: the handshake
// completes, and a request without an acceptable certificate gets an HTML 400.
func nginxLike(w http.ResponseWriter, r *http.Request) {
	page := ""
	switch {
	case len(r.TLS.PeerCertificates) == 0:
		page = "400 No required SSL certificate was sent"
	case time.Now().After(r.TLS.PeerCertificates[0].NotAfter):
		page = "400 The SSL certificate error"
	case r.URL.Path == "/plain-400":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "<html><title>400 Bad Request</title>your form is wrong</html>")
		return
	default:
		_, _ = io.WriteString(w, "hello "+r.TLS.PeerCertificates[0].Subject.CommonName)
		return
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, "<html>\r\n<head><title>"+page+"</title></head>\r\n<body>\r\n"+
		"<center><h1>400 Bad Request</h1></center>\r\n<center>"+
		strings.TrimPrefix(page, "400 ")+"</center>\r\n<hr><center>nginx</center>\r\n"+
		"</body>\r\n</html>\r\n")
}

func TestRefusalAnsweredInHTTP(t *testing.T) {
	t.Parallel()
	f := fixture()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven, handler: nginxLike}.start(t)
	expired := f.clientInter.Client(testpki.Options{CommonName: "old",
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{
		clientCert("acme"), clientCert("off", disabled()),
		newCert("old", expired, []*testpki.Cert{f.clientInter})}))
	base := httpURL(up.URL)
	cases := []struct {
		name, cert, path string
		status           int
		code, body       string
	}{
		{"accepted", "acme", "/", 200, "", "hello acme"},
		{"no certificate sent", "off", "/", 502, CodeClientCertificateRequired, ""},
		{"certificate refused", "old", "/", 502, CodeCertificateExpired, ""},
		{"other 400 passes unchanged", "acme", "/plain-400", 400, "", "your form is wrong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(t, base+tc.path, DefaultCertHeader, tc.cert)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get(ErrorHeader); got != tc.code {
				t.Errorf("%s = %q, want %q", ErrorHeader, got, tc.code)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body %q lacks %q", body, tc.body)
			}
		})
	}
}
