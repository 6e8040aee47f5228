package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// poolKey names a transport. It is a comparable struct rather than a string built
// per request, so that finding the transport allocates nothing.
type poolKey struct {
	kind uint8  // one of the key* kinds below
	id   string // the certificate's ID, for keyCert and keyAnon
}

// Kinds of pool keys.
const (
	keyPlain      uint8 = iota // plain HTTP upstream
	keyDefaultTLS              // TLS without certificate settings
	keyCert                    // TLS presenting a certificate
	keyAnon                    // TLS with a certificate's settings, not presenting it
)

// identity is everything that makes two upstream TLS connections interchangeable:
// the client certificate offered and the way the server is verified. Connections
// and TLS sessions are never shared between identities.
type identity struct {
	key poolKey
	tls bool
	// cert is presented; nil presents no certificate.
	cert *certconfig.Certificate
	// settings gives the server name, server roots and verification switch; nil
	// means the URL's host and the system roots.
	settings *certconfig.Certificate
}

func identityOf(ex *exchange) identity {
	return identityFor(ex.useTLS, ex.cert, ex.sent)
}

// identityFor keys a certificate by its ID, which changes whenever its material or
// TLS settings change. A certificate that is not presented (disabled) keeps its
// server settings under a key of its own.
func identityFor(useTLS bool, c *certconfig.Certificate, present bool) identity {
	switch {
	case !useTLS:
		return identity{key: poolKey{kind: keyPlain}}
	case c == nil:
		return identity{key: poolKey{kind: keyDefaultTLS}, tls: true}
	case present:
		return identity{key: poolKey{keyCert, idOf(c)}, tls: true, cert: c, settings: c}
	}
	return identity{key: poolKey{keyAnon, idOf(c)}, tls: true, settings: c}
}

// idOf falls back to the certificate's address for one built without an ID, so
// that such certificates never share a pool.
func idOf(c *certconfig.Certificate) string {
	if c.ID != "" {
		return c.ID
	}
	return fmt.Sprintf("%p", c)
}

// pool holds one transport per identity for the snapshot in force.
type pool struct {
	cur    *certconfig.Current
	dialer func(time.Duration) DialFunc
	// roots verify upstreams for requests without certificate settings; nil means
	// the system roots.
	roots *x509.CertPool

	mu         sync.Mutex
	lim        limits
	transports map[poolKey]*http.Transport
}

func newPool(cur *certconfig.Current, dialer func(time.Duration) DialFunc) *pool {
	return &pool{cur: cur, dialer: dialer, transports: make(map[poolKey]*http.Transport)}
}

// transport returns the transport for id under snapshot s. A request that read its
// snapshot before a Swap gets a transport of its own that keeps no connection, so
// that nothing the Swap dropped is pooled again.
func (pl *pool) transport(s *certconfig.Snapshot, id identity) *http.Transport {
	lim := limitsOf(s)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if s != pl.cur.Load() {
		return pl.buildOneShot(id, lim)
	}
	if lim != pl.lim {
		pl.dropLocked(func(poolKey) bool { return true })
		pl.lim = lim
	}
	t, ok := pl.transports[id.key]
	if !ok {
		t = pl.build(id, lim)
		pl.transports[id.key] = t
	}
	return t
}

// prune runs on every Swap: transports of identities the new snapshot no longer
// has (certificate deleted, replaced, disabled or enabled) close their idle
// connections and are dropped; their busy connections close when their request
// ends. New limits rebuild every transport, and so does a new egress table: a
// pooled connection was checked under the old one.
func (pl *pool) prune(old, next *certconfig.Snapshot) {
	live := liveKeys(next)
	lim := limitsOf(next)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if lim != pl.lim || egressChanged(old, next) {
		pl.lim = lim
		pl.dropLocked(func(poolKey) bool { return true })
		return
	}
	pl.dropLocked(func(key poolKey) bool { return !live[key] })
}

func liveKeys(s *certconfig.Snapshot) map[poolKey]bool {
	live := map[poolKey]bool{{kind: keyPlain}: true, {kind: keyDefaultTLS}: true}
	if s == nil {
		return live
	}
	for _, c := range s.Certificates {
		live[identityFor(true, c, c.Enabled).key] = true
	}
	return live
}

func (pl *pool) dropLocked(drop func(key poolKey) bool) {
	for key, t := range pl.transports {
		if drop(key) {
			t.CloseIdleConnections()
			delete(pl.transports, key)
		}
	}
}

func (pl *pool) closeIdle() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, t := range pl.transports {
		t.CloseIdleConnections()
	}
}

func (pl *pool) build(id identity, lim limits) *http.Transport {
	t := &http.Transport{
		Proxy:                  nil, // never HTTP_PROXY: that could be this proxy
		DialContext:            pl.dialer(lim.dial),
		ForceAttemptHTTP2:      true,
		MaxIdleConnsPerHost:    lim.maxIdlePerHost,
		IdleConnTimeout:        lim.idle,
		TLSHandshakeTimeout:    lim.handshake,
		ResponseHeaderTimeout:  lim.header,
		MaxResponseHeaderBytes: lim.maxHeaderBytes,
		ExpectContinueTimeout:  time.Second,
		// Relay bodies as they are: no Accept-Encoding added, nothing decoded.
		DisableCompression: true,
	}
	if id.tls {
		t.TLSClientConfig = tlsConfig(id, pl.roots)
	}
	return t
}

// buildOneShot builds a transport whose connections close after one request:
// no keep-alive and no HTTP/2, whose connections would otherwise stay open.
func (pl *pool) buildOneShot(id identity, lim limits) *http.Transport {
	t := pl.build(id, lim)
	t.DisableKeepAlives = true
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return t
}

// tlsConfig is the client side of the identity. Each gets its own session cache:
// Go keys cached sessions by server name only, so a shared cache would resume one
// certificate's session on another's connection.
func tlsConfig(id identity, roots *x509.CertPool) *tls.Config {
	cfg := &tls.Config{
		RootCAs:              roots,
		MinVersion:           tls.VersionTLS12,
		ClientSessionCache:   tls.NewLRUClientSessionCache(0),
		GetClientCertificate: clientCertificate(id.cert),
	}
	if s := id.settings; s != nil {
		cfg.ServerName = s.ServerName
		cfg.RootCAs = s.ServerCAs
		// Set only by an operator's insecure_skip_verify, warned about at load.
		cfg.InsecureSkipVerify = s.InsecureSkipVerify
	}
	return cfg
}

type getClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error)

// clientCertificate answers the server's certificate request with c, whatever
// CAs the server lists: with Config.Certificates Go would send nothing when the
// list does not match, hiding a chain problem behind "no certificate". Without a
// certificate it sends an empty one (never nil, which would fail the handshake).
func clientCertificate(c *certconfig.Certificate) getClientCertificate {
	return func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		exchangeFrom(cri.Context()).hs.requested()
		if c == nil {
			return &tls.Certificate{}, nil
		}
		return &c.TLS, nil
	}
}
