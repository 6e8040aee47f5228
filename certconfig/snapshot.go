package certconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Source says where a certificate was defined.
const (
	SourceConfig = "config" // the TOML file
	SourceAPI    = "api"    // the admin API (kept in the state folder)
)

// Certificate is one loaded client certificate with everything needed to present it
// and to explain a failure. It is immutable once built; a change builds a new one.
type Certificate struct {
	Name    string
	Enabled bool
	Source  string // SourceConfig or SourceAPI

	// TLS is what is presented: the leaf first, then the chain (extra certificates of
	// the cert file, then ca_file, without duplicates and without the leaf), with the
	// private key. TLS.Leaf is not kept (see Leaf).
	TLS tls.Certificate
	// Subject (RFC 2253), NotBefore and NotAfter are the leaf's. The rest of the
	// parsed leaf is not kept: with thousands of certificates it was a third of the
	// process's memory. Leaf parses it again for the few places that need it.
	Subject             string
	NotBefore, NotAfter time.Time
	// Chain is the parsed certificates presented after the leaf, in the order they
	// are sent. Chain certificates are shared between certificates.
	Chain []*x509.Certificate
	// ChainComplete is true when the certificates presented include the leaf's
	// issuer (servers keep their roots) or the leaf is self-signed. False means a
	// server that only knows the root cannot build the path: an intermediate is
	// probably missing.
	ChainComplete bool
	KeyType       string // "RSA 2048", "ECDSA P-256", "Ed25519"
	Fingerprint   string // SHA-256 of the leaf's DER, lowercase hex with colons

	ServerName string
	// ServerCAs are the roots the upstream is verified against; nil means the system
	// roots. ServerCAPEM is their PEM text, kept to show and to persist.
	ServerCAs          *x509.CertPool
	ServerCAPEM        []byte
	InsecureSkipVerify bool

	// ID identifies the material and TLS settings (leaf, chain, key, server name,
	// server CAs, insecure flag). Two certificates with the same ID can share upstream
	// connections; any change of material or settings gives a new ID.
	ID string

	// Warnings are load-time notes an operator should see (expired, expiring soon,
	// not yet valid, chain does not reach a root, insecure verification, key file
	// readable by others). They never stop the load.
	Warnings []string

	// Files lists every file this certificate was read from, resolved, for watching.
	Files []string

	// otherWarnings are the Warnings that do not depend on the time.
	otherWarnings []string
	// inputs is a hash of what the certificate was built from (see inputSum); zero
	// if it was not taken.
	inputs [32]byte
}

// WarningsAt returns the certificate's warnings with those about the leaf's dates
// (expired, expiring within ExpiryWarning, not yet valid) as they stand at now, so
// that a certificate that expired since it was loaded says so without a reload.
func (c *Certificate) WarningsAt(now time.Time) []string {
	out := append([]string{}, c.otherWarnings...)
	if len(c.TLS.Certificate) > 0 {
		out = append(out, validityWarnings("certificate", c.NotBefore, c.NotAfter, now)...)
	}
	for _, ca := range c.Chain {
		if now.After(ca.NotAfter) {
			out = append(out, fmt.Sprintf("chain certificate %q expired on %s; get the "+
				"current one from your CA", ca.Subject.String(), FormatDate(ca.NotAfter)))
		}
	}
	return out
}

// String names the certificate without its material: printing a Certificate with
// fmt's %v or %+v, or as a slog value, never shows its private key.
func (c *Certificate) String() string {
	return fmt.Sprintf("certificate %q (%s, %s, id %.12s)", c.Name, c.Source, c.Subject, c.ID)
}

// LogValue is what log/slog records for a Certificate: see String.
func (c *Certificate) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Leaf parses the leaf certificate again, for views that need more than Subject and
// the dates. It returns nil for a Certificate that has none.
func (c *Certificate) Leaf() *x509.Certificate {
	if len(c.TLS.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.TLS.Certificate[0])
	if err != nil {
		return nil // it parsed when the certificate was built
	}
	return leaf
}

// Route is one compiled [[route]].
type Route struct {
	Host        string // as written, lowercased
	Port        int    // 0 matches any port
	Certificate string
	TLS         bool

	key      string // see hostKey
	wildcard bool
}

// Matches reports whether the route applies to host (a name or IP without port,
// lowercase, no trailing dot) and port.
func (r *Route) Matches(host string, port int) bool {
	if r.Port != 0 && r.Port != port {
		return false
	}
	if r.wildcard {
		return strings.HasSuffix(host, r.key)
	}
	return host == r.key
}

// Snapshot is a complete, validated view of the configuration. It is never changed
// after it is built: readers hold a pointer for as long as they need it.
type Snapshot struct {
	Config       *Config
	Certificates map[string]*Certificate
	Names        []string // certificate names in configuration order
	Routes       []*Route
	LoadedAt     time.Time
	// Files lists every file the snapshot was read from (config, PEMs, passphrases).
	Files []string

	// routes indexes Routes; NewSnapshot sets it. Without it, Route scans.
	routes *routeIndex
}

// OrderedNames lists the certificates in configuration order (Names), then any
// others (added through the admin API) sorted by name.
func (s *Snapshot) OrderedNames() []string {
	seen := make(map[string]bool, len(s.Certificates))
	names := make([]string, 0, len(s.Certificates))
	for _, n := range s.Names {
		if _, ok := s.Certificates[n]; ok && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	var rest []string
	for n := range s.Certificates {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// Certificate returns the certificate called name, whether enabled or not.
func (s *Snapshot) Certificate(name string) (*Certificate, bool) {
	c, ok := s.Certificates[name]
	return c, ok
}

// Route returns the first route that matches host and port, or nil. host is a name
// or IP without port, lowercase, without a trailing dot.
func (s *Snapshot) Route(host string, port int) *Route {
	if s.routes != nil {
		return s.routes.lookup(s.Routes, host, port)
	}
	for _, r := range s.Routes {
		if r.Matches(host, port) {
			return r
		}
	}
	return nil
}

// routeIndex finds the first matching route without trying every route: with one
// route per certificate, scanning 10,000 routes took longer than the rest of the
// request. It maps each exact host, and each wildcard suffix, to the positions of
// the routes that name it, in order.
type routeIndex struct {
	exact    map[string][]int32
	wildcard map[string][]int32 // by suffix, with its leading dot
}

func indexRoutes(routes []*Route) *routeIndex {
	x := &routeIndex{exact: map[string][]int32{}, wildcard: map[string][]int32{}}
	for i, r := range routes {
		m := x.exact
		if r.wildcard {
			m = x.wildcard
		}
		m[r.key] = append(m[r.key], int32(i))
	}
	return x
}

// lookup returns the route of lowest position among those for host itself and for
// every suffix of host that starts at a dot, whose port matches.
func (x *routeIndex) lookup(routes []*Route, host string, port int) *Route {
	best := -1
	consider := func(positions []int32) {
		for _, i := range positions {
			if best >= 0 && int(i) >= best {
				return
			}
			if p := routes[i].Port; p == 0 || p == port {
				best = int(i)
				return
			}
		}
	}
	consider(x.exact[host])
	if len(x.wildcard) > 0 {
		for i := 0; i < len(host); i++ {
			if host[i] == '.' {
				consider(x.wildcard[host[i:]])
			}
		}
	}
	if best < 0 {
		return nil
	}
	return routes[best]
}

// ReloadStatus is the outcome of the latest attempt to load the configuration.
type ReloadStatus struct {
	At      time.Time
	Success bool
	Err     string // empty on success
	// LastSuccess is when a snapshot was last swapped in.
	LastSuccess time.Time
	// Successes and Failures count the load attempts since start.
	Successes, Failures uint64
}

// Current holds the snapshot in force and tells subscribers when it changes. The
// zero value is empty; Load returns nil until the first Swap.
type Current struct {
	snap   atomic.Pointer[Snapshot]
	status atomic.Pointer[ReloadStatus]

	mu   sync.Mutex
	subs []func(old, new *Snapshot)
}

// Load returns the snapshot in force.
func (c *Current) Load() *Snapshot { return c.snap.Load() }

// Swap puts s in force and calls every subscriber, in order, before returning, so
// that when Swap returns the next request sees s and no pool holds material s dropped.
func (c *Current) Swap(s *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Swap(s)
	for _, f := range c.subs {
		f(old, s)
	}
}

// Subscribe registers f to be called after every Swap with the old and new snapshot.
func (c *Current) Subscribe(f func(old, new *Snapshot)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs = append(c.subs, f)
}

// SetStatus records the outcome of a load attempt.
func (c *Current) SetStatus(st ReloadStatus) { c.status.Store(&st) }

// Status returns the outcome of the latest load attempt, or the zero value.
func (c *Current) Status() ReloadStatus {
	if p := c.status.Load(); p != nil {
		return *p
	}
	return ReloadStatus{}
}
