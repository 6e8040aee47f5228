package egress

import (
	"net/netip"
	"strconv"
	"strings"
)

// ParseHostIP reports whether host is an IP address in any spelling that a resolver,
// a browser or curl would turn into one, and returns that address. Besides the usual
// forms it accepts IPv6 in brackets or with a zone, and the old BSD forms of IPv4:
// one to four parts, each decimal, octal ("0177") or hex ("0x7f"), the last part
// filling the remaining bytes, so "2130706433", "0x7f.1" and "127.1" are all
// 127.0.0.1. Dots after an IPv4 address, and anything after white space, are
// ignored, as some resolvers do. Hosts that netip.ParseAddr accepts come back exactly
// as it parses them.
func ParseHostIP(host string) (netip.Addr, bool) {
	if !mayBeIP(host) {
		return netip.Addr{}, false // a host name: parsing would only allocate errors
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, true
	}
	h := host
	if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
		if ip, err := netip.ParseAddr(h); err == nil {
			return ip, true
		}
	}
	return parseLooseIPv4(h)
}

// mayBeIP rules out most host names without parsing: every form ParseHostIP
// accepts is made of hex digits, 'x', dots, colons and brackets up to a zone ('%')
// or white space, after which anything may follow.
func mayBeIP(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' || c == ' ' || ('\t' <= c && c <= '\r'):
			return true
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F',
			c == 'x', c == 'X', c == '.', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// parseLooseIPv4 reads the BSD inet_aton forms of an IPv4 address.
func parseLooseIPv4(s string) (netip.Addr, bool) {
	if i := strings.IndexAny(s, " \t\n\v\f\r"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, ".")
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, part := range parts {
		n, ok := parseIPv4Number(part)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (24 - 8*i)
			continue
		}
		if n >= 1<<(8*(5-len(parts))) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseIPv4Number reads one part: decimal, octal after a leading 0, hex after 0x.
// A bare "0x" is zero, as URL parsers read it.
func parseIPv4Number(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true
		}
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	n, err := strconv.ParseUint(s, base, 32)
	return n, err == nil
}

// looksNumeric reports whether the last label of host is a number (decimal, or hex
// after 0x). URL parsers refuse such a host unless it is an IPv4 address, and a
// resolver may read it in ways of its own, so one that ParseHostIP rejects is refused.
func looksNumeric(host string) bool {
	h := strings.TrimRight(host, ".")
	last := h[strings.LastIndexByte(h, '.')+1:]
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}
