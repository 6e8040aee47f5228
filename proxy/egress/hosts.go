package egress

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// hostPattern is one compiled entry of allow_hosts or deny_hosts.
type hostPattern struct {
	text   string // as written, for messages
	exact  string // the normalised name or address; empty for a wildcard
	suffix string // ".example.com" for "*.example.com"
}

func (h hostPattern) match(key string) bool {
	if h.suffix != "" {
		return strings.HasSuffix(key, h.suffix)
	}
	return key == h.exact
}

func compileHosts(key string, list []string, errs *[]error) []hostPattern {
	out := make([]hostPattern, 0, len(list))
	for i, s := range list {
		pat, err := compileHost(s)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s[%d]: %w", key, i, err))
		}
		out = append(out, pat)
	}
	return out
}

const hostExample = `write a name such as "api.example.com" or "*.example.com"`

func compileHost(s string) (hostPattern, error) {
	if strings.TrimSpace(s) == "" {
		return hostPattern{}, fmt.Errorf("is empty; remove it or %s", hostExample)
	}
	if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
		return hostPattern{}, fmt.Errorf(
			"%q is an address range; put it in egress.allow_cidrs or egress.deny_cidrs", s)
	}
	key := hostKey(s)
	if _, isIP := ParseHostIP(key); isIP {
		return hostPattern{text: s, exact: key}, nil
	}
	name, wildcard := strings.CutPrefix(key, "*.")
	if err := certconfig.CheckHostName(name); err != nil {
		return hostPattern{}, fmt.Errorf("%q %w; %s", s, err, hostExample)
	}
	if wildcard {
		return hostPattern{text: s, suffix: "." + name}, nil
	}
	return hostPattern{text: s, exact: name}, nil
}

// hostKey normalises a host for matching: lower case, no surrounding space, brackets
// or trailing dots, and an address in any spelling written the usual way.
func hostKey(host string) string {
	h := strings.TrimRight(strings.ToLower(strings.TrimSpace(host)), ".")
	if ip, ok := ParseHostIP(h); ok {
		return ip.WithZone("").Unmap().String()
	}
	return h
}
