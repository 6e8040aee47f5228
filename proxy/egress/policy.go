// Package egress decides which destinations the proxy may connect to. It checks the
// requested host by name, then every address the host resolves to, so that neither an
// odd spelling of an internal address nor a DNS answer pointing inside gets through,
// and it dials only addresses it has checked.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// Policy is a compiled [egress] table. It is immutable and safe for concurrent use;
// build a new one when the configuration changes.
type Policy struct {
	denyPrivate bool
	allowCIDRs  []netip.Prefix
	denyCIDRs   []netip.Prefix
	allowHosts  []hostPattern
	denyHosts   []hostPattern
}

// NewPolicy compiles c. CIDR lists also take bare addresses, read as /32 or /128.
// Host lists take exact names, "*.example.com" (any name below example.com, not
// example.com itself) or addresses; they are matched without regard to case or a
// trailing dot. An unset DenyPrivate means true. Every invalid entry is reported,
// each naming its key and index.
func NewPolicy(c certconfig.EgressConfig) (*Policy, error) {
	p := &Policy{denyPrivate: c.DenyPrivate == nil || *c.DenyPrivate}
	var errs []error
	p.allowCIDRs = compileCIDRs("egress.allow_cidrs", c.AllowCIDRs, &errs)
	p.denyCIDRs = compileCIDRs("egress.deny_cidrs", c.DenyCIDRs, &errs)
	p.allowHosts = compileHosts("egress.allow_hosts", c.AllowHosts, &errs)
	p.denyHosts = compileHosts("egress.deny_hosts", c.DenyHosts, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func compileCIDRs(key string, list []string, errs *[]error) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		prefix, err := parseCIDR(strings.TrimSpace(s))
		if err != nil {
			*errs = append(*errs, fmt.Errorf(
				"%s[%d]: %q is not a CIDR; write it like \"10.0.0.0/8\"", key, i, s))
		}
		out = append(out, prefix)
	}
	return out
}

// parseCIDR reads a prefix or a bare address. IPv4-mapped IPv6 prefixes are turned
// into IPv4 ones, because addresses are compared in their unmapped form.
func parseCIDR(s string) (netip.Prefix, error) {
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		ip, ipErr := netip.ParseAddr(s)
		if ipErr != nil || ip.Zone() != "" {
			return netip.Prefix{}, err
		}
		prefix = netip.PrefixFrom(ip, ip.BitLen())
	}
	if a := prefix.Addr(); a.Is4In6() && prefix.Bits() >= 96 {
		prefix = netip.PrefixFrom(a.Unmap(), prefix.Bits()-96)
	}
	return prefix.Masked(), nil
}

// CheckHost checks host by name, before any resolution: deny_hosts refuse it, and a
// non-empty allow_hosts refuses every host it does not list. A host that spells an
// address (see ParseHostIP) is matched as that address; a number-like host that is
// no valid address is refused. A refusal is a *DeniedError.
func (p *Policy) CheckHost(host string) error {
	key := hostKey(host)
	if _, isIP := ParseHostIP(key); !isIP && looksNumeric(key) {
		return &DeniedError{Host: host, Rule: "host", Reason: ReasonInvalidHost,
			detail: "looks like an IPv4 address but is not a valid one",
			fix:    `write a host name or a dotted-decimal address such as "10.1.2.3"`}
	}
	for i, pat := range p.denyHosts {
		if pat.match(key) {
			rule := fmt.Sprintf("egress.deny_hosts[%d]", i)
			return &DeniedError{Host: host, Rule: rule, Reason: ReasonDenyHost,
				detail: fmt.Sprintf("matches %s (%q)", rule, pat.text),
				fix:    "remove that entry to allow it"}
		}
	}
	if len(p.allowHosts) == 0 {
		return nil
	}
	for _, pat := range p.allowHosts {
		if pat.match(key) {
			return nil
		}
	}
	return &DeniedError{Host: host, Rule: "egress.allow_hosts", Reason: ReasonNotAllowedHost,
		detail: "is not in egress.allow_hosts", fix: "add it there to allow it"}
}

// CheckIP checks an address as resolved or requested. deny_cidrs always refuse;
// with deny_private, loopback, private, link-local, metadata and other special-use
// addresses are refused unless allow_cidrs list them. An IPv6 address that carries
// an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is allowed only if the
// IPv4 address is allowed too. A refusal is a *DeniedError.
func (p *Policy) CheckIP(ip netip.Addr) error {
	if d := p.checkIP("", ip); d != nil {
		return d
	}
	return nil
}

func (p *Policy) checkIP(host string, ip netip.Addr) *DeniedError {
	if !ip.IsValid() {
		return &DeniedError{Host: host, IP: ip, Rule: "egress.deny_private",
			Reason: ReasonUnspecified, detail: "is not a valid address"}
	}
	forms := formsOf(ip)
	for _, f := range forms {
		if i, ok := findPrefix(p.denyCIDRs, f.addr); ok {
			return p.denyCIDRError(host, ip, f, i)
		}
	}
	if !p.denyPrivate {
		return nil
	}
	for _, f := range forms {
		if _, ok := findPrefix(p.allowCIDRs, f.addr); ok {
			continue
		}
		if s, ok := classify(f.addr); ok {
			return privateError(host, ip, f, s)
		}
	}
	return nil
}

func findPrefix(list []netip.Prefix, ip netip.Addr) (int, bool) {
	for i, prefix := range list {
		if prefix.Contains(ip) {
			return i, true
		}
	}
	return 0, false
}

func (p *Policy) denyCIDRError(host string, ip netip.Addr, f form, i int) *DeniedError {
	rule := fmt.Sprintf("egress.deny_cidrs[%d]", i)
	where := fmt.Sprintf("%s (%s)", rule, p.denyCIDRs[i])
	detail := "is in " + where
	if f.via != "" {
		detail = fmt.Sprintf("carries %s (%s), which is in %s", f.addr, f.via, where)
	}
	return &DeniedError{Host: hostLabel(host, ip), IP: ip, Rule: rule, Reason: ReasonDenyCIDR,
		detail: detail, fix: "remove that entry to allow it"}
}

func privateError(host string, ip netip.Addr, f form, s special) *DeniedError {
	detail, fix := "is "+s.what, "add it to egress.allow_cidrs to allow it"
	if f.via != "" {
		detail = fmt.Sprintf("carries %s (%s), %s", f.addr, f.via, s.what)
		fix = fmt.Sprintf("add %s to egress.allow_cidrs to allow it",
			netip.PrefixFrom(f.addr, f.addr.BitLen()))
	}
	return &DeniedError{Host: hostLabel(host, ip), IP: ip, Rule: "egress.deny_private",
		Reason: s.reason, detail: detail, fix: fix}
}

// hostLabel drops a host that says no more than the address itself.
func hostLabel(host string, ip netip.Addr) string {
	if strings.Trim(host, "[]") == ip.String() {
		return ""
	}
	return host
}
