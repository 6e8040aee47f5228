package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// remote is an alert as crypto/tls returns it when the server sends one.
func remote(text string) error {
	return &net.OpError{Op: "remote error", Err: errors.New("tls: " + text)}
}

// wrapped puts err where http.Transport puts handshake errors.
func wrapped(err error) error { return fmt.Errorf("net/http: connection broken: %w", err) }

func syscallErr(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "net/http: TLS handshake timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	f := fixture()
	dated := func(nb, na time.Time, complete bool) *certconfig.Certificate {
		leaf := f.clientInter.Client(testpki.Options{CommonName: "c", NotBefore: nb, NotAfter: na})
		c := newCert("c", leaf, []*testpki.Cert{f.clientInter})
		c.ChainComplete = complete
		return c
	}
	valid := dated(now.Add(-time.Hour), now.Add(time.Hour), true)
	partial := dated(now.Add(-time.Hour), now.Add(time.Hour), false)
	expired := dated(now.Add(-2*time.Hour), now.Add(-time.Hour), true)
	early := dated(now.Add(time.Hour), now.Add(2*time.Hour), true)
	stranger := f.clientInter.Client(testpki.Options{CommonName: "stranger"})
	mismatched := dated(now.Add(-time.Hour), now.Add(time.Hour), true)
	mismatched.TLS.PrivateKey = stranger.Key

	serverLeaf := f.serverRoot.Intermediate("i").Server(testpki.Options{DNSNames: []string{"x"}})
	selfSigned := testpki.SelfSigned(testpki.Options{DNSNames: []string{"x"}})
	verify := func(err error, chain ...*testpki.Cert) error {
		cve := &tls.CertificateVerificationError{Err: err}
		for _, c := range chain {
			cve.UnverifiedCertificates = append(cve.UnverifiedCertificates, c.Cert)
		}
		return wrapped(cve)
	}
	unknown := func(c *testpki.Cert) error { return x509.UnknownAuthorityError{Cert: c.Cert} }
	invalid := func(nb, na time.Time) error {
		return x509.CertificateInvalidError{Reason: x509.Expired,
			Cert: &x509.Certificate{NotBefore: nb, NotAfter: na}}
	}

	cases := []struct {
		name string
		err  error
		cert *certconfig.Certificate
		sent bool
		want string
	}{
		{"no error", nil, valid, true, ""},

		// The server's verdict on our certificate.
		{"certificate required", remote("certificate required"), nil, false,
			CodeClientCertificateRequired},
		{"bad certificate, none sent", remote("bad certificate"), nil, false,
			CodeClientCertificateRequired},
		{"handshake failure, none sent", wrapped(remote("handshake failure")), nil, false,
			CodeClientCertificateRequired},
		{"handshake failure, disabled certificate", remote("handshake failure"), valid, false,
			CodeClientCertificateRequired},
		{"handshake failure, certificate sent", remote("handshake failure"), valid, true,
			CodeTLSProtocol},
		{"expired alert", remote("expired certificate"), valid, true, CodeCertificateExpired},
		{"any rejection of an expired leaf", remote("bad certificate"), expired, true,
			CodeCertificateExpired},
		{"unknown CA for an expired leaf", remote("unknown certificate authority"), expired, true,
			CodeCertificateExpired},
		{"expired alert for a leaf not yet valid", remote("expired certificate"), early, true,
			CodeCertificateNotYetValid},
		{"unknown CA, incomplete chain", remote("unknown certificate authority"), partial, true,
			CodeIncompleteChain},
		{"unknown CA, complete chain", remote("unknown certificate authority"), valid, true,
			CodeCertificateUntrusted},
		{"decrypt error", remote("error decrypting message"), valid, true,
			CodeBadCertificateSignature},
		{"bad certificate", remote("bad certificate"), valid, true, CodeCertificateUntrusted},
		{"unknown certificate", remote("unknown certificate"), valid, true,
			CodeCertificateUntrusted},
		{"access denied", remote("access denied"), valid, true, CodeCertificateUntrusted},
		{"unrecognized name", remote("unrecognized name"), valid, true, CodeTLSProtocol},
		{"protocol version", remote("protocol version not supported"), nil, false,
			CodeTLSProtocol},
		{"unknown alert number", remote("alert(200)"), valid, true, CodeTLSProtocol},
		{"alert flattened into text",
			errors.New("http2: conn failed: remote error: tls: certificate required"), nil, false,
			CodeClientCertificateRequired},

		// A TLS 1.3 rejection whose alert was lost.
		{"lost alert, none sent", &rejectedError{io.EOF}, nil, false,
			CodeClientCertificateRequired},
		{"lost alert, expired", &rejectedError{io.EOF}, expired, true, CodeCertificateExpired},
		{"lost alert, not yet valid", &rejectedError{io.EOF}, early, true,
			CodeCertificateNotYetValid},
		{"lost alert, key mismatch", &rejectedError{syscallErr(syscall.EPIPE)}, mismatched, true,
			CodeBadCertificateSignature},
		{"lost alert, incomplete chain", &rejectedError{io.EOF}, partial, true,
			CodeIncompleteChain},
		{"lost alert, complete chain", &rejectedError{io.EOF}, valid, true,
			CodeCertificateUntrusted},
		{"lost mark but alert present", &rejectedError{remote("unknown certificate authority")},
			partial, true, CodeIncompleteChain},

		// Our verdict on the server's certificate.
		{"hostname", verify(x509.HostnameError{Certificate: serverLeaf.Cert, Host: "y"}),
			valid, true, CodeHostnameMismatch},
		{"server expired", verify(invalid(now.Add(-2*time.Hour), now.Add(-time.Hour))),
			valid, true, CodeUpstreamCertificateExpired},
		{"server not yet valid", verify(invalid(now.Add(time.Hour), now.Add(2*time.Hour))),
			nil, false, CodeUpstreamCertificateNotYetValid},
		{"server self-signed", verify(unknown(selfSigned), selfSigned), valid, true,
			CodeSelfSignedCertificate},
		{"server leaf alone", verify(unknown(serverLeaf), serverLeaf), valid, true,
			CodeUpstreamCertificateUntrusted},
		{"server chain to unknown CA", verify(unknown(serverLeaf), serverLeaf, serverLeaf.Issuer),
			valid, true, CodeUpstreamCertificateUntrusted},
		{"unknown authority without verification error", unknown(selfSigned), nil, false,
			CodeSelfSignedCertificate},
		{"server certificate not for servers",
			verify(x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}), nil, false,
			CodeUpstreamCertificateUntrusted},

		// Network.
		{"refused", syscallErr(syscall.ECONNREFUSED), valid, true, CodeUpstreamConnectionRefused},
		{"unreachable", syscallErr(syscall.EHOSTUNREACH), nil, false, CodeUpstreamUnreachable},
		{"dns", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", IsNotFound: true}},
			nil, false, CodeUpstreamUnresolvable},
		{"deadline", wrapped(context.DeadlineExceeded), nil, false, CodeUpstreamTimeout},
		{"handshake timeout", &handshakeError{timeoutErr{}}, valid, true, CodeUpstreamTimeout},
		{"client went away", wrapped(context.Canceled), nil, false, CodeRequestCanceled},

		// Everything else.
		{"not TLS", &handshakeError{tls.RecordHeaderError{Msg: "first record does not look " +
			"like a TLS handshake"}}, nil, false, CodeTLSProtocol},
		{"local TLS error", errors.New("tls: server selected unsupported protocol version 301"),
			nil, false, CodeTLSProtocol},
		{"handshake, untyped", &handshakeError{errors.New("boom")}, nil, false, CodeTLSProtocol},
		{"reset after a response began", syscallErr(syscall.ECONNRESET), valid, true,
			CodeUpstreamConnectionFailed},
		{"eof", io.ErrUnexpectedEOF, nil, false, CodeUpstreamConnectionFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := classifyAt(tc.err, tc.cert, tc.sent, now); got != tc.want {
				t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestLostConnection(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"eof", wrapped(io.EOF), true},
		{"reset", syscallErr(syscall.ECONNRESET), true},
		{"broken pipe", syscallErr(syscall.EPIPE), true},
		{"closed", &net.OpError{Op: "write", Err: net.ErrClosed}, true},
		{"http2 setup", errors.New("http2: client conn could not be established"), true},
		{"closed before the request", errors.New("http: server closed idle connection"), true},
		{"alert", remote("bad certificate"), false},
		{"timeout", timeoutErr{}, false},
		{"canceled", context.Canceled, false},
		{"refused", syscallErr(syscall.ECONNREFUSED), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := lostConnection(tc.err); got != tc.want {
				t.Errorf("lostConnection(%v) = %v", tc.err, got)
			}
		})
	}
}

func TestParseAlert(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want alert
		ok   bool
	}{
		{"tls: unknown certificate authority", alertUnknownCA, true},
		{"tls: unknown certificate", alertCertificateUnknown, true},
		{"tls: bad certificate", alertBadCertificate, true},
		{"tls: certificate required", alertCertificateRequired, true},
		{"tls: alert(116)", alertCertificateRequired, true},
		{"tls: alert(999)", 0, false},
		{"tls: alert(", 0, false},
		{"tls: made-up alert", 0, false},
		{"bad certificate", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := parseAlert(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseAlert(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestContractMessages pins the codes and messages the design fixes.
func TestContractMessages(t *testing.T) {
	t.Parallel()
	contract := map[string]string{
		"tls_protocol_error": "TLS protocol error occurred. This may indicate a mutual TLS " +
			"configuration issue.",
		"hostname_mismatch": "Hostname does not match the certificate. Check the server " +
			"name (SNI) configuration.",
		"certificate_expired":       "Certificate has expired.",
		"certificate_not_yet_valid": "Certificate is not yet valid.",
		"bad_certificate_signature": "Unable to verify certificate signature.",
		"incomplete_chain": "Unable to verify the certificate chain. Ensure the CA " +
			"certificate is configured correctly.",
		"certificate_untrusted":   "Certificate is not trusted.",
		"self_signed_certificate": "Self-signed certificate detected.",
		"upstream_certificate_expired": "The server's certificate has expired. " +
			"Ask the server operator to renew it.",
		"client_certificate_required": "The server requires a client certificate and none " +
			"was sent. Attach an enabled certificate to this request.",
	}
	for code, want := range contract {
		if got := Message(code); got != want {
			t.Errorf("Message(%q) = %q, want %q", code, got, want)
		}
		if Status(code) != 502 {
			t.Errorf("Status(%q) = %d", code, Status(code))
		}
	}
	for code, info := range codes {
		if info.message == "" || info.status < 400 {
			t.Errorf("code %q has message %q, status %d", code, info.message, info.status)
		}
	}
	if Status(CodeUpstreamTimeout) != 504 || Status("no_such_code") != 502 {
		t.Error("timeout must be 504, unknown codes 502")
	}
}
