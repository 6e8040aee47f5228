package egress

import "net/netip"

// special is an address range that deny_private refuses.
type special struct {
	prefix netip.Prefix
	reason string
	what   string // completes "the address is ..."
}

// specials is searched in order and the first match wins, so single addresses that
// deserve their own wording come before the ranges that hold them.
var specials = []special{
	sp("169.254.169.254/32", ReasonMetadata, "the cloud instance metadata service"),
	sp("169.254.170.2/32", ReasonMetadata, "the container credentials endpoint (ECS)"),
	sp("169.254.170.23/32", ReasonMetadata, "the pod identity endpoint (EKS)"),
	sp("100.100.100.200/32", ReasonMetadata, "the Alibaba Cloud metadata service"),
	sp("fd00:ec2::254/128", ReasonMetadata, "the cloud instance metadata service (IPv6)"),
	sp("fd00:ec2::23/128", ReasonMetadata, "the pod identity endpoint (EKS, IPv6)"),

	sp("0.0.0.0/8", ReasonUnspecified, `an unspecified ("this network") address`),
	sp("127.0.0.0/8", ReasonLoopback, "a loopback address"),
	sp("10.0.0.0/8", ReasonPrivate, "a private address (RFC 1918)"),
	sp("172.16.0.0/12", ReasonPrivate, "a private address (RFC 1918)"),
	sp("192.168.0.0/16", ReasonPrivate, "a private address (RFC 1918)"),
	sp("100.64.0.0/10", ReasonCGNAT, "a carrier-grade NAT address (RFC 6598)"),
	sp("169.254.0.0/16", ReasonLinkLocal, "a link-local address"),
	sp("192.0.0.0/24", ReasonReserved, "an IETF protocol assignment (RFC 6890)"),
	sp("198.18.0.0/15", ReasonReserved, "a benchmarking address (RFC 2544)"),
	// Documentation ranges are never assigned to real hosts: a request for one is
	// a copied example or a probe, and refusing it costs nothing.
	sp("192.0.2.0/24", ReasonReserved, "a documentation address (RFC 5737)"),
	sp("198.51.100.0/24", ReasonReserved, "a documentation address (RFC 5737)"),
	sp("203.0.113.0/24", ReasonReserved, "a documentation address (RFC 5737)"),
	sp("224.0.0.0/4", ReasonMulticast, "a multicast address"),
	sp("255.255.255.255/32", ReasonReserved, "the broadcast address"),
	sp("240.0.0.0/4", ReasonReserved, "a reserved address (240.0.0.0/4)"),

	sp("::/128", ReasonUnspecified, "the unspecified address"),
	sp("::1/128", ReasonLoopback, "a loopback address"),
	sp("fe80::/10", ReasonLinkLocal, "a link-local address"),
	sp("fc00::/7", ReasonPrivate, "a unique-local address (RFC 4193)"),
	sp("fec0::/10", ReasonPrivate, "a site-local address (deprecated, RFC 3879)"),
	sp("ff00::/8", ReasonMulticast, "a multicast address"),
	sp("100::/64", ReasonReserved, "a discard-only address (RFC 6666)"),
	sp("2001:2::/48", ReasonReserved, "a benchmarking address (RFC 5180)"),
	sp("2001:db8::/32", ReasonReserved, "a documentation address (RFC 3849)"),
	sp("3fff::/20", ReasonReserved, "a documentation address (RFC 9637)"),
}

func sp(prefix, reason, what string) special {
	return special{prefix: netip.MustParsePrefix(prefix), reason: reason, what: what}
}

// classify returns the special range that holds ip, which must carry no zone.
func classify(ip netip.Addr) (special, bool) {
	for _, s := range specials {
		if s.prefix.Contains(ip) {
			return s, true
		}
	}
	return special{}, false
}

// form is one way an address is reached: the address itself, or an IPv4 address
// that an IPv6 address carries and that a translator or tunnel would deliver to.
type form struct {
	addr netip.Addr
	via  string // "" for the address itself, else the mechanism, such as "NAT64"
}

// layout says which bytes of an IPv6 address hold an embedded IPv4 address.
type layout struct {
	at       [4]int
	invert   bool // Teredo stores the client address with every bit flipped
	zeroFrom int  // the layout applies only if bytes zeroFrom..15 are zero; 0: always
}

// embedding is an IPv6 range whose addresses carry IPv4 addresses.
type embedding struct {
	prefix  netip.Prefix
	via     string
	layouts []layout
}

var (
	last4   = layout{at: [4]int{12, 13, 14, 15}}
	v6Zero  = netip.IPv6Unspecified()
	v6Local = netip.IPv6Loopback()
)

var embeddings = []embedding{
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6", []layout{last4}},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated IPv6", []layout{last4}},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64", []layout{last4}},
	// The local-use NAT64 prefix may be deployed at /48, /56, /64 or /96 (RFC 6052
	// section 2.2), and the address does not say which. Every layout whose suffix is
	// zero, as that RFC requires, is read, and each address read must be allowed.
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64", []layout{
		{at: [4]int{6, 7, 9, 10}, zeroFrom: 11},
		{at: [4]int{7, 9, 10, 11}, zeroFrom: 12},
		{at: [4]int{9, 10, 11, 12}, zeroFrom: 13},
		last4,
	}},
	{netip.MustParsePrefix("2002::/16"), "6to4", []layout{{at: [4]int{2, 3, 4, 5}}}},
	{netip.MustParsePrefix("2001::/32"), "Teredo", []layout{
		{at: [4]int{4, 5, 6, 7}},
		{at: [4]int{12, 13, 14, 15}, invert: true},
	}},
}

// formsOf lists the ways ip is reached. An IPv4-mapped address is only its IPv4
// address; other IPv6 addresses are themselves plus whatever IPv4 they embed.
func formsOf(ip netip.Addr) []form {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return []form{{addr: ip.Unmap(), via: "IPv4-mapped IPv6"}}
	}
	forms := []form{{addr: ip}}
	if !ip.Is6() || ip == v6Zero || ip == v6Local {
		return forms
	}
	b := ip.As16()
	for _, e := range embeddings {
		if !e.prefix.Contains(ip) {
			continue
		}
		for _, l := range e.layouts {
			if l.fits(b) {
				forms = append(forms, form{addr: l.extract(b), via: e.via})
			}
		}
	}
	return forms
}

func (l layout) fits(b [16]byte) bool {
	if l.zeroFrom == 0 {
		return true
	}
	for _, c := range b[l.zeroFrom:] {
		if c != 0 {
			return false
		}
	}
	return true
}

func (l layout) extract(b [16]byte) netip.Addr {
	var v4 [4]byte
	for i, at := range l.at {
		v4[i] = b[at]
		if l.invert {
			v4[i] ^= 0xff
		}
	}
	return netip.AddrFrom4(v4)
}
