package proxy

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// alert is a TLS alert number (RFC 8446 section 6).
type alert uint8

// Alerts the classifier tells apart.
const (
	alertHandshakeFailure       alert = 40
	alertBadCertificate         alert = 42
	alertUnsupportedCertificate alert = 43
	alertCertificateRevoked     alert = 44
	alertCertificateExpired     alert = 45
	alertCertificateUnknown     alert = 46
	alertUnknownCA              alert = 48
	alertAccessDenied           alert = 49
	alertDecryptError           alert = 51
	alertProtocolVersion        alert = 70
	alertUnrecognizedName       alert = 112
	alertCertificateRequired    alert = 116
)

// alertNames are crypto/tls's texts for alerts, which is all a received alert
// exposes: it arrives as a *net.OpError with Op "remote error" wrapping an
// unexported value. (tls.AlertError only wraps alerts the client itself sends, and
// only on QUIC.)
var alertNames = map[string]alert{
	"close notify":                    0,
	"unexpected message":              10,
	"bad record MAC":                  20,
	"decryption failed":               21,
	"record overflow":                 22,
	"decompression failure":           30,
	"handshake failure":               alertHandshakeFailure,
	"bad certificate":                 alertBadCertificate,
	"unsupported certificate":         alertUnsupportedCertificate,
	"revoked certificate":             alertCertificateRevoked,
	"expired certificate":             alertCertificateExpired,
	"unknown certificate":             alertCertificateUnknown,
	"illegal parameter":               47,
	"unknown certificate authority":   alertUnknownCA,
	"access denied":                   alertAccessDenied,
	"error decoding message":          50,
	"error decrypting message":        alertDecryptError,
	"export restriction":              60,
	"protocol version not supported":  alertProtocolVersion,
	"insufficient security level":     71,
	"internal error":                  80,
	"inappropriate fallback":          86,
	"user canceled":                   90,
	"no renegotiation":                100,
	"missing extension":               109,
	"unsupported extension":           110,
	"certificate unobtainable":        111,
	"unrecognized name":               alertUnrecognizedName,
	"bad certificate status response": 113,
	"bad certificate hash value":      114,
	"unknown PSK identity":            115,
	"certificate required":            alertCertificateRequired,
	"no application protocol":         120,
	"encrypted client hello required": 121,
}

const remoteErrorPrefix = "remote error: "

// remoteAlert finds the alert the server sent in err's chain. When a layer has
// flattened the chain into text (HTTP/2 does for some connection errors), the
// text is searched instead.
func remoteAlert(err error) (alert, bool) {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" && oe.Err != nil {
		return parseAlert(oe.Err.Error())
	}
	msg := err.Error()
	i := strings.Index(msg, remoteErrorPrefix)
	if i < 0 {
		return 0, false
	}
	return parseAlert(msg[i+len(remoteErrorPrefix):])
}

// parseAlert reads "tls: bad certificate" or "tls: alert(42)", ignoring any text
// that follows the alert.
func parseAlert(s string) (alert, bool) {
	s, ok := strings.CutPrefix(s, "tls: ")
	if !ok {
		return 0, false
	}
	if rest, ok := strings.CutPrefix(s, "alert("); ok {
		num, _, closed := strings.Cut(rest, ")")
		n, err := strconv.ParseUint(num, 10, 8)
		if !closed || err != nil {
			return 0, false
		}
		return alert(n), true
	}
	best := ""
	for name := range alertNames {
		if strings.HasPrefix(s, name) && len(name) > len(best) {
			best = name
		}
	}
	return alertNames[best], best != ""
}

// rejectsCertificate reports whether a server sends a as its verdict on a client
// certificate (as opposed to a protocol or negotiation problem).
func (a alert) rejectsCertificate() bool {
	switch a {
	case alertHandshakeFailure, alertBadCertificate, alertUnsupportedCertificate,
		alertCertificateRevoked, alertCertificateExpired, alertCertificateUnknown,
		alertUnknownCA, alertAccessDenied, alertDecryptError:
		return true
	}
	return false
}
