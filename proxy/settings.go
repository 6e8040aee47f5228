package proxy

import (
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// Defaults for [proxy] keys left at zero, as in a snapshot built without the loader:
// the loader's own.
const (
	defaultDialTimeout           = certconfig.DefaultDialTimeout
	defaultHandshakeTimeout      = certconfig.DefaultTLSHandshakeTimeout
	defaultResponseHeaderTimeout = certconfig.DefaultResponseHeaderTimeout
	defaultIdleConnTimeout       = certconfig.DefaultIdleConnTimeout
	defaultMaxIdleConnsPerHost   = certconfig.DefaultMaxIdlePerHost
)

// limits are the [proxy] settings baked into a transport when it is built.
// maxHeaderBytes bounds the response headers an upstream may send, as
// max_header_bytes bounds those of a client. No limit covers a whole exchange: a
// body may stream for as long as it keeps moving.
type limits struct {
	dial, handshake, header, idle time.Duration
	tunnelIdle                    time.Duration
	maxIdlePerHost                int
	maxHeaderBytes                int64
}

func proxyConfig(s *certconfig.Snapshot) certconfig.ProxyConfig {
	if s == nil || s.Config == nil {
		return certconfig.ProxyConfig{}
	}
	return s.Config.Proxy
}

func limitsOf(s *certconfig.Snapshot) limits {
	pc := proxyConfig(s)
	return limits{
		dial:      orDefault(pc.DialTimeout.Duration, defaultDialTimeout),
		handshake: orDefault(pc.TLSHandshakeTimeout.Duration, defaultHandshakeTimeout),
		header:    orDefault(pc.ResponseHeaderTimeout.Duration, defaultResponseHeaderTimeout),
		idle:      orDefault(pc.IdleConnTimeout.Duration, defaultIdleConnTimeout),
		tunnelIdle: orDefault(pc.TunnelIdleTimeout.Duration,
			certconfig.DefaultTunnelIdleTimeout),
		maxIdlePerHost: orDefault(pc.MaxIdleConnsPerHost, defaultMaxIdleConnsPerHost),
		maxHeaderBytes: int64(orDefault(pc.MaxHeaderBytes, certconfig.DefaultMaxHeaderBytes)),
	}
}

func certHeaderOf(s *certconfig.Snapshot) string {
	return orDefault(proxyConfig(s).CertHeader, DefaultCertHeader)
}

// connectDenied reports whether [proxy] connect turns CONNECT off.
func connectDenied(s *certconfig.Snapshot) bool {
	return proxyConfig(s).Connect == "deny"
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
