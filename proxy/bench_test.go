package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"syscall"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/proxy/egress"
)

func BenchmarkClassify(b *testing.B) {
	cert := clientCert("c")
	cases := []struct {
		name string
		err  error
	}{
		{"alert unknown CA", wrapped(remote("unknown certificate authority"))},
		{"hostname mismatch", &tls.CertificateVerificationError{
			Err: x509.HostnameError{Certificate: fixture().server.Cert, Host: "x.test"}}},
		{"lost TLS 1.3 alert", &rejectedError{syscallErr(syscall.ECONNRESET)}},
		{"connection refused", syscallErr(syscall.ECONNREFUSED)},
		{"timeout", wrapped(timeoutErr{})},
		{"egress denied", fmt.Errorf("dial: %w", &egress.DeniedError{
			IP: netip.MustParseAddr("10.0.0.1"), Rule: "egress.deny_private", Reason: "private"})},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if Classify(tc.err, cert, true) == "" {
					b.Fatal("no code")
				}
			}
		})
	}
}

// BenchmarkProxyRoundTrip sends GETs through the proxy to a TLS upstream that
// requires a client certificate, over kept-alive connections on both sides.
func BenchmarkProxyRoundTrip(b *testing.B) {
	up := upstream{handler: func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}}.start(b)
	quiet := func(_ *harness, o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.Observe = nil
	}
	h := newHarness(b, newSnapshot(b, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}), quiet)
	c := h.client()
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, httpURL(up.URL)+"/bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set(DefaultCertHeader, "acme")

	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
