package proxy

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/proxy/egress"
)

// Error codes. Each code is stable: it is sent in the X-Mtls-Proxy-Error header and
// in the JSON body of every response the proxy makes itself, logged, and counted.
//
//	code                               status  meaning
//	tls_protocol_error                 502  handshake refused for a reason not below
//	                                        (SNI not recognised, protocol version, ...)
//	hostname_mismatch                  502  the server's certificate is not for the name
//	                                        dialled (or for server_name when set)
//	certificate_expired                502  our client certificate is past its not-after
//	certificate_not_yet_valid          502  our client certificate is before its not-before
//	bad_certificate_signature          502  the server could not verify our signature
//	                                        (key does not match, or bad chain signature)
//	incomplete_chain                   502  the server does not know our issuer and our
//	                                        chain lacks the leaf's issuer
//	certificate_untrusted              502  the server does not trust our CA
//	self_signed_certificate            502  the server's own certificate is self-signed
//	client_certificate_required        502  the server wants a certificate and none was sent
//	upstream_certificate_expired       502  the server's certificate has expired
//	upstream_certificate_not_yet_valid 502  the server's certificate is not valid yet
//	upstream_certificate_untrusted     502  the server's chain does not reach a root we
//	                                        trust (set server_ca_file)
//	upstream_connection_refused        502  nothing listens on the upstream host and port
//	upstream_unresolvable              502  the upstream host name does not resolve
//	upstream_unreachable               502  no route to the upstream host
//	upstream_timeout                   504  dial, handshake or response headers too slow
//	upstream_connection_failed         502  the connection broke before a response
//	upstream_headers_too_large         502  the response headers pass [proxy] max_header_bytes
//	egress_denied                      403  the [egress] policy refuses the destination
//	proxy_auth_required                407  [proxy] auth_file is set and the client sent no
//	                                        valid Proxy-Authorization
//	request_canceled                   499  the client went away (logged, not seen)
//	invalid_request_body               400  the client's body ended early or is malformed
//	shutdown_cut                       503  cut when the shutdown grace period ran out (logged)
//	conflicting_certificate_header     400  the certificate header names two certificates
//	not_a_proxy_request                400  origin-form request sent to the proxy
//	invalid_target                     400  not an absolute http:// or https:// URL
//	connect_denied                     403  CONNECT is turned off ([proxy] connect)
//	not_ready                          503  no configuration has been loaded yet
const (
	CodeTLSProtocol                    = "tls_protocol_error"
	CodeHostnameMismatch               = "hostname_mismatch"
	CodeCertificateExpired             = "certificate_expired"
	CodeCertificateNotYetValid         = "certificate_not_yet_valid"
	CodeBadCertificateSignature        = "bad_certificate_signature"
	CodeIncompleteChain                = "incomplete_chain"
	CodeCertificateUntrusted           = "certificate_untrusted"
	CodeSelfSignedCertificate          = "self_signed_certificate"
	CodeClientCertificateRequired      = "client_certificate_required"
	CodeUpstreamCertificateExpired     = "upstream_certificate_expired"
	CodeUpstreamCertificateNotYetValid = "upstream_certificate_not_yet_valid"
	CodeUpstreamCertificateUntrusted   = "upstream_certificate_untrusted"
	CodeUpstreamConnectionRefused      = "upstream_connection_refused"
	CodeUpstreamUnresolvable           = "upstream_unresolvable"
	CodeUpstreamUnreachable            = "upstream_unreachable"
	CodeUpstreamTimeout                = "upstream_timeout"
	CodeUpstreamConnectionFailed       = "upstream_connection_failed"
	CodeUpstreamHeadersTooLarge        = "upstream_headers_too_large"
	CodeEgressDenied                   = "egress_denied"
	CodeProxyAuthRequired              = "proxy_auth_required"
	CodeRequestCanceled                = "request_canceled"
	CodeInvalidRequestBody             = "invalid_request_body"
	CodeShutdownCut                    = "shutdown_cut"
	CodeConflictingCertificateHeader   = "conflicting_certificate_header"
	CodeNotAProxyRequest               = "not_a_proxy_request"
	CodeInvalidTarget                  = "invalid_target"
	CodeConnectDenied                  = "connect_denied"
	CodeNotReady                       = "not_ready"
)

// StatusClientClosedRequest is the status logged when the client went away before
// the answer; it never reaches a client.
const StatusClientClosedRequest = 499

type codeInfo struct {
	status  int
	message string
}

var codes = map[string]codeInfo{
	CodeTLSProtocol: {502, "TLS protocol error occurred. " +
		"This may indicate a mutual TLS configuration issue."},
	CodeHostnameMismatch: {502, "Hostname does not match the certificate. " +
		"Check the server name (SNI) configuration."},
	CodeCertificateExpired:      {502, "Certificate has expired."},
	CodeCertificateNotYetValid:  {502, "Certificate is not yet valid."},
	CodeBadCertificateSignature: {502, "Unable to verify certificate signature."},
	CodeIncompleteChain: {502, "Unable to verify the certificate chain. " +
		"Ensure the CA certificate is configured correctly."},
	CodeCertificateUntrusted:  {502, "Certificate is not trusted."},
	CodeSelfSignedCertificate: {502, "Self-signed certificate detected."},
	CodeClientCertificateRequired: {502, "The server requires a client certificate and " +
		"none was sent. Attach an enabled certificate to this request."},
	CodeUpstreamCertificateExpired: {502, "The server's certificate has expired. " +
		"Ask the server operator to renew it."},
	CodeUpstreamCertificateUntrusted: {502, "The server's certificate does not chain to a " +
		"CA the proxy trusts. Set server_ca_file on the certificate to the CA that issued " +
		"it, or have the server send its intermediate certificates."},
	CodeUpstreamCertificateNotYetValid: {502, "The server's certificate is not yet valid. " +
		"Check the clocks of both machines, or ask the server operator to fix its dates."},
	CodeUpstreamConnectionRefused: {502, "The upstream refused the connection. " +
		"Check the host and port, and that the server is running."},
	CodeUpstreamUnresolvable: {502, "The upstream host name could not be resolved. " +
		"Check the spelling of the host and the proxy's DNS settings."},
	CodeUpstreamUnreachable: {502, "The upstream host could not be reached. " +
		"Check the address and the network path from the proxy."},
	CodeUpstreamTimeout: {504, "The upstream did not answer in time. " +
		"Check that the host and port are right and the server is up, " +
		"or raise the proxy timeouts for a slow server."},
	CodeUpstreamConnectionFailed: {502, "The connection to the upstream failed before " +
		"a complete response arrived. Retry, and check the server's logs if it persists."},
	CodeUpstreamHeadersTooLarge: {502, "The upstream's response headers are larger than " +
		"the proxy accepts. Raise [proxy] max_header_bytes, or make the server send " +
		"fewer or smaller headers."},
	CodeEgressDenied: {403, "The destination is refused by the proxy's egress policy. " +
		"Ask the operator to allow it in [egress] if it is meant to be reachable."},
	CodeProxyAuthRequired: {407, "The proxy requires authentication. Send " +
		"Proxy-Authorization: Basic with a user and password from its auth_file."},
	CodeShutdownCut: {503, "The proxy stopped before the exchange finished: its shutdown " +
		"grace period ran out. Retry the request."},
	CodeInvalidRequestBody: {400, "The request body could not be read: it ended before " +
		"its declared length or its chunked encoding is broken. Check how the sender " +
		"frames the body."},
	CodeRequestCanceled: {StatusClientClosedRequest, "The client closed the request " +
		"before the upstream answered."},
	CodeConflictingCertificateHeader: {400, "The certificate header names more than one " +
		"certificate. Send a single certificate name."},
	CodeNotAProxyRequest: {400, "This is a forward proxy; send absolute-form requests, " +
		"for example by setting HTTP_PROXY to this address."},
	CodeInvalidTarget: {400, "The request target must be an absolute http:// or " +
		"https:// URL with a host."},
	CodeConnectDenied: {403, "CONNECT tunnels are turned off on this proxy. " +
		"Send plain http:// requests; the proxy originates TLS itself."},
	CodeNotReady: {503, "The proxy has no configuration loaded yet. Retry shortly."},
}

// Message returns the text shown to clients for code, or "" for an unknown code.
func Message(code string) string { return codes[code].message }

// Status returns the HTTP status the proxy answers with for code; 502 for a code it
// does not know.
func Status(code string) int {
	if c, ok := codes[code]; ok {
		return c.status
	}
	return 502
}

// Classify returns the error code for a failed upstream exchange. presented is the
// certificate chosen for the request (nil when none, possibly disabled) and sent
// reports whether its material was offered in the handshake (false when the
// certificate is disabled or missing).
func Classify(err error, presented *certconfig.Certificate, sent bool) string {
	return classifyAt(err, presented, sent, time.Now())
}

func classifyAt(err error, cert *certconfig.Certificate, sent bool, now time.Time) string {
	if err == nil {
		return ""
	}
	if _, ok := errors.AsType[*egress.DeniedError](err); ok {
		return CodeEgressDenied
	}
	if cert == nil || len(cert.TLS.Certificate) == 0 {
		sent = false
	}
	if a, ok := remoteAlert(err); ok {
		return alertCode(a, cert, sent, now)
	}
	if code := serverCertificateCode(err, now); code != "" {
		return code
	}
	if _, ok := errors.AsType[*rejectedError](err); ok {
		return rejectionCode(cert, sent, now)
	}
	if code := networkCode(err); code != "" {
		return code
	}
	if isTLSFailure(err) {
		return CodeTLSProtocol
	}
	// net/http reports this limit as text only.
	if strings.Contains(err.Error(), "server response headers exceeded") {
		return CodeUpstreamHeadersTooLarge
	}
	return CodeUpstreamConnectionFailed
}

// tlsCodes are the codes that explain a failed TLS exchange with the upstream, as
// opposed to a network, policy or client problem.
var tlsCodes = map[string]bool{
	CodeTLSProtocol:                    true,
	CodeHostnameMismatch:               true,
	CodeCertificateExpired:             true,
	CodeCertificateNotYetValid:         true,
	CodeBadCertificateSignature:        true,
	CodeIncompleteChain:                true,
	CodeCertificateUntrusted:           true,
	CodeSelfSignedCertificate:          true,
	CodeClientCertificateRequired:      true,
	CodeUpstreamCertificateExpired:     true,
	CodeUpstreamCertificateNotYetValid: true,
	CodeUpstreamCertificateUntrusted:   true,
}

// alertCode explains an alert sent by the server. Servers reject a client
// certificate with different alerts (Go: unknown CA, expired, bad certificate;
// OpenSSL adds decrypt error; some send handshake failure for everything), so the
// dates and chain of what was presented decide before the alert does.
func alertCode(a alert, cert *certconfig.Certificate, sent bool, now time.Time) string {
	switch {
	case a == alertCertificateRequired:
		return CodeClientCertificateRequired
	case !sent && (a == alertBadCertificate || a == alertHandshakeFailure):
		return CodeClientCertificateRequired
	case !sent:
		return CodeTLSProtocol
	}
	if a.rejectsCertificate() {
		if code := datesCode(cert, now); code != "" {
			return code
		}
	}
	switch a {
	case alertCertificateExpired:
		return CodeCertificateExpired
	case alertUnknownCA:
		return chainCode(cert)
	case alertDecryptError:
		return CodeBadCertificateSignature
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked,
		alertCertificateUnknown, alertAccessDenied:
		return CodeCertificateUntrusted
	}
	return CodeTLSProtocol
}

// rejectionCode explains a TLS 1.3 rejection whose alert was lost (see
// rejectedError) from what is known of the certificate that was presented.
func rejectionCode(cert *certconfig.Certificate, sent bool, now time.Time) string {
	if !sent {
		return CodeClientCertificateRequired
	}
	if code := datesCode(cert, now); code != "" {
		return code
	}
	if !keyMatches(cert) {
		return CodeBadCertificateSignature
	}
	return chainCode(cert)
}

// keyMatches reports whether the private key presented is the leaf's. A key that
// does not match makes the server fail our signature (decrypt_error).
func keyMatches(cert *certconfig.Certificate) bool {
	signer, ok := cert.TLS.PrivateKey.(crypto.Signer)
	leaf := cert.Leaf()
	return ok && leaf != nil && certconfig.SameKey(leaf, signer)
}

func datesCode(cert *certconfig.Certificate, now time.Time) string {
	switch {
	case now.After(cert.NotAfter):
		return CodeCertificateExpired
	case now.Before(cert.NotBefore):
		return CodeCertificateNotYetValid
	}
	return ""
}

// chainCode tells an unknown issuer apart: a chain that stops short of a root most
// likely misses an intermediate the server needs; a complete one is simply not
// trusted by the server.
func chainCode(cert *certconfig.Certificate) string {
	if !cert.ChainComplete {
		return CodeIncompleteChain
	}
	return CodeCertificateUntrusted
}

// serverCertificateCode explains a failure to verify the upstream's certificate,
// or returns "" when err is not one.
func serverCertificateCode(err error, now time.Time) string {
	var chain []*x509.Certificate
	cve, isVerify := errors.AsType[*tls.CertificateVerificationError](err)
	if isVerify {
		chain = cve.UnverifiedCertificates
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return CodeHostnameMismatch
	}
	if inv, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		if inv.Reason == x509.Expired && inv.Cert != nil {
			return upstreamDatesCode(inv.Cert, now)
		}
		return CodeUpstreamCertificateUntrusted
	}
	if ua, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		if len(chain) == 0 && ua.Cert != nil {
			chain = []*x509.Certificate{ua.Cert}
		}
		return unknownAuthorityCode(chain)
	}
	if isVerify {
		return CodeUpstreamCertificateUntrusted
	}
	return ""
}

// upstreamDatesCode tells expired from not-yet-valid: x509 reports both as Expired.
func upstreamDatesCode(c *x509.Certificate, now time.Time) string {
	if now.Before(c.NotBefore) {
		return CodeUpstreamCertificateNotYetValid
	}
	return CodeUpstreamCertificateExpired
}

// unknownAuthorityCode explains a server chain that does not reach a trusted root.
// The server's leaf signed by itself is self_signed_certificate. Anything else is
// upstream_certificate_untrusted: the proxy lacks the server's CA (server_ca_file)
// or the server leaves out its intermediate; its message names both fixes, since
// the two cannot be told apart from what the server sent.
func unknownAuthorityCode(chain []*x509.Certificate) string {
	if len(chain) > 0 && certconfig.IsSelfSigned(chain[0]) {
		return CodeSelfSignedCertificate
	}
	return CodeUpstreamCertificateUntrusted
}

// networkCode explains dial and transport failures, or returns "".
func networkCode(err error) string {
	if errors.Is(err, context.Canceled) {
		return CodeRequestCanceled
	}
	if isTimeout(err) {
		return CodeUpstreamTimeout
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return CodeUpstreamUnresolvable
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return CodeUpstreamConnectionRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return CodeUpstreamUnreachable
	}
	return ""
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// isTLSFailure reports whether err happened inside a TLS handshake, or is one of
// the local TLS errors that carry no type ("tls: server selected unsupported
// protocol version").
func isTLSFailure(err error) bool {
	if _, ok := errors.AsType[*handshakeError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	return strings.Contains(err.Error(), "tls: ")
}

// lostConnection reports whether err is the kind of failure a server's TLS 1.3
// rejection of the client certificate hides behind when its alert is lost: the
// connection closed or reset while the request was written or the answer awaited.
func lostConnection(err error) bool {
	if isTimeout(err) || errors.Is(err, context.Canceled) {
		return false
	}
	if _, ok := remoteAlert(err); ok {
		return false
	}
	for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
		syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED} {
		if errors.Is(err, target) {
			return true
		}
	}
	// net/http reports some of these as text only: HTTP/2 a connection that died
	// before its settings, HTTP/1 one that closed before the request was written.
	msg := err.Error()
	for _, text := range []string{"client conn could not be established",
		"server closed idle connection", "connection reset", "broken pipe"} {
		if strings.Contains(msg, text) {
			return true
		}
	}
	return false
}

// handshakeError marks an error as raised while the TLS handshake was running.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// rejectedError marks a failure as the server refusing the client certificate
// although its alert never arrived. In TLS 1.3 the client finishes the handshake
// before the server has checked the certificate; the server's verdict comes after,
// and when it closes the connection while the request is still being written the
// alert is lost behind a reset, a broken pipe or an EOF. The proxy applies the mark
// when such a failure follows a TLS 1.3 handshake on a new connection in which the
// server asked for a certificate, before any response arrived. A server that asks
// for an optional certificate and then drops the connection for another reason
// is misreported this way; that trade is taken so that one failure gives one
// code on TLS 1.2 and 1.3.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }
