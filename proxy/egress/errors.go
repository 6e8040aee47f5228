package egress

import (
	"fmt"
	"net/netip"
	"strings"
)

// Reasons for a denial. Each is a short, fixed string, so that it can be used as a
// metric label without growing the number of series.
const (
	ReasonDenyHost       = "deny_host"        // the host matched egress.deny_hosts
	ReasonNotAllowedHost = "not_allowed_host" // egress.allow_hosts is set and lacks the host
	ReasonInvalidHost    = "invalid_host"     // a number-like host that is no valid address
	ReasonDenyCIDR       = "deny_cidr"        // the address is in egress.deny_cidrs
	ReasonLoopback       = "loopback"
	ReasonPrivate        = "private" // RFC 1918, IPv6 unique-local and site-local
	ReasonCGNAT          = "cgnat"
	ReasonLinkLocal      = "link_local"
	ReasonMetadata       = "metadata" // a cloud instance metadata or credentials endpoint
	ReasonUnspecified    = "unspecified"
	ReasonMulticast      = "multicast"
	ReasonReserved       = "reserved" // broadcast, 240/4, protocol, benchmark, documentation
)

// Reasons returns every value DeniedError.Reason can take, for callers that set up
// metric series in advance.
func Reasons() []string {
	return []string{
		ReasonDenyHost, ReasonNotAllowedHost, ReasonInvalidHost, ReasonDenyCIDR,
		ReasonLoopback, ReasonPrivate, ReasonCGNAT, ReasonLinkLocal, ReasonMetadata,
		ReasonUnspecified, ReasonMulticast, ReasonReserved,
	}
}

// DeniedError reports a destination that the egress policy refuses. Nothing has been
// dialled when it is returned.
type DeniedError struct {
	// Host is the host as requested; empty when only an address was checked, or
	// when the host was that address written the usual way.
	Host string
	// IP is the refused address as requested or resolved; the zero Addr when the
	// host was refused by name.
	IP netip.Addr
	// Rule is the configuration entry that decided, such as "egress.deny_private",
	// "egress.deny_cidrs[2]" or "egress.allow_hosts"; "host" for a malformed host.
	Rule string
	// Reason is one of the Reason constants.
	Reason string

	detail string // what the destination is or matched, starting with a verb
	fix    string // how to allow it
}

// Error says what was refused, why, and which setting would allow it.
func (e *DeniedError) Error() string {
	var b strings.Builder
	b.WriteString("egress denied: ")
	switch {
	case e.IP.IsValid() && e.Host != "":
		fmt.Fprintf(&b, "%s (for host %q)", e.IP, e.Host)
	case e.IP.IsValid():
		b.WriteString(e.IP.String())
	default:
		fmt.Fprintf(&b, "host %q", e.Host)
	}
	detail := e.detail
	if detail == "" {
		detail = fmt.Sprintf("is refused by %s (%s)", e.Rule, e.Reason)
	}
	b.WriteString(" " + detail)
	if e.fix != "" {
		b.WriteString("; " + e.fix)
	}
	return b.String()
}
