package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/proxy/egress"
)

// CheckSnapshot reports what would stop the proxy from applying s: an [egress]
// table that does not compile, or a [proxy] auth_file that cannot be read or
// parsed. Install it as certconfig.Reloader.Check so that such a reload fails and
// the snapshot in force stays.
func CheckSnapshot(s *certconfig.Snapshot) error {
	if s == nil || s.Config == nil {
		return errors.New("proxy: the snapshot has no configuration")
	}
	var errs []error
	if _, err := egress.NewPolicy(s.Config.Egress); err != nil {
		errs = append(errs, err)
	}
	if _, err := loadAuth(s.Config); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// guard is what the proxy derives from one configuration: the egress policy with
// the dial function that enforces it, and the client authenticator. An admin
// change swaps in a snapshot that shares the file's *Config, and keeps its guard;
// a reload of the file builds a new one, reading the auth file again.
type guard struct {
	cfg    *certconfig.Config
	policy *egress.Policy
	dial   DialFunc
	auth   *authenticator
	// authErr is set when the auth file could not be read as the snapshot came
	// into force (CheckSnapshot makes that a narrow race): every client is then
	// refused, rather than let in unauthenticated.
	authErr error
}

// checkHost applies the policy to a host as the client wrote it, before any
// resolution: the name, and the address it spells if it spells one. Names are
// resolved, and their addresses checked, when they are dialled.
func (g *guard) checkHost(host string) error {
	if err := g.policy.CheckHost(host); err != nil {
		return err
	}
	ip, ok := egress.ParseHostIP(host)
	if !ok {
		return nil
	}
	err := g.policy.CheckIP(ip)
	if d, ok := errors.AsType[*egress.DeniedError](err); ok && host != ip.String() {
		d.Host = host
	}
	return err
}

// guards keeps the guard of the configuration in force.
type guards struct {
	cur    *certconfig.Current
	base   DialFunc
	lookup egress.LookupFunc
	log    *slog.Logger

	mu   sync.Mutex // serialises builds, so that a file is read once per swap
	last atomic.Pointer[guard]
}

func newGuards(cur *certconfig.Current, base DialFunc, lookup egress.LookupFunc,
	log *slog.Logger) *guards {
	if base == nil {
		var d net.Dialer
		base = d.DialContext
	}
	return &guards{cur: cur, base: base, lookup: lookup, log: log}
}

// current returns the guard of the snapshot in force, building it on first use.
func (gs *guards) current() *guard {
	s := gs.cur.Load()
	cfg := configOf(s)
	if g := gs.last.Load(); g != nil && g.cfg == cfg {
		return g
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g := gs.last.Load(); g != nil && g.cfg == cfg {
		return g
	}
	g := gs.build(cfg)
	// A caller that loaded the snapshot just before a Swap must not put the old
	// guard back in place of the new one.
	if gs.cur.Load() == s {
		gs.last.Store(g)
	}
	return g
}

// swapped runs on every Swap, so that the auth file is read, and a problem
// logged, when the snapshot comes into force rather than at the next request.
func (gs *guards) swapped(_, _ *certconfig.Snapshot) { gs.current() }

func (gs *guards) build(cfg *certconfig.Config) *guard {
	g := &guard{cfg: cfg}
	var ec certconfig.EgressConfig
	if cfg != nil {
		ec = cfg.Egress
	}
	policy, err := egress.NewPolicy(ec)
	if err != nil {
		// The zero table always compiles and refuses every internal address.
		gs.log.Error("invalid [egress] table; refusing internal addresses until it is "+
			"fixed", "error", err)
		policy, _ = egress.NewPolicy(certconfig.EgressConfig{})
	}
	g.policy = policy
	g.dial = policy.DialContext(gs.base, gs.lookup)
	g.auth, g.authErr = loadAuth(cfg)
	if g.authErr != nil {
		gs.log.Error("cannot read the proxy users; refusing every client until it is "+
			"fixed", "error", g.authErr)
	}
	return g
}

func configOf(s *certconfig.Snapshot) *certconfig.Config {
	if s == nil {
		return nil
	}
	return s.Config
}

// egressChanged reports whether next's [egress] table differs from old's, in which
// case pooled connections, checked under the old table, must not be reused.
func egressChanged(old, next *certconfig.Snapshot) bool {
	a, b := configOf(old), configOf(next)
	if a == b {
		return false
	}
	if a == nil || b == nil {
		return true
	}
	ea, eb := a.Egress, b.Egress
	return denyPrivate(ea) != denyPrivate(eb) ||
		!slices.Equal(ea.AllowCIDRs, eb.AllowCIDRs) || !slices.Equal(ea.DenyCIDRs, eb.DenyCIDRs) ||
		!slices.Equal(ea.AllowHosts, eb.AllowHosts) || !slices.Equal(ea.DenyHosts, eb.DenyHosts)
}

func denyPrivate(e certconfig.EgressConfig) bool { return e.DenyPrivate == nil || *e.DenyPrivate }

// deniedMessage is the message of an egress_denied answer: the policy's own
// text, which names the address and what to change, and the rule that decided.
func deniedMessage(d *egress.DeniedError) string {
	text := d.Error()
	if d.Rule != "" && !strings.Contains(text, d.Rule) {
		text = fmt.Sprintf("%s (rule %s)", text, d.Rule)
	}
	return text
}
