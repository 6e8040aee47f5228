package certconfig

import (
	"fmt"
	"net/netip"
	"strings"
)

// CompileRoute checks a [[route]] table and builds its matcher. The host is an exact
// name, a wildcard "*.example.com" (one or more labels in front of the suffix, never
// the bare suffix), or an IPv4 or IPv6 address.
func CompileRoute(rc RouteConfig) (*Route, error) {
	host := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(rc.Host)), ".")
	if rc.Port < 0 || rc.Port > 65535 {
		return nil, fmt.Errorf("port: %d is out of range; use 1-65535 or leave it out for any port", rc.Port)
	}
	key, wildcard, err := hostKey(host)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	return &Route{Host: host, Port: rc.Port, Certificate: rc.Certificate, TLS: rc.TLS,
		key: key, wildcard: wildcard}, nil
}

// hostKey checks a route's host and returns what a request's host is compared
// with: an IP address in canonical form, the name itself, or, for "*.example.com",
// the suffix ".example.com" (wildcard true).
func hostKey(host string) (key string, wildcard bool, err error) {
	if host == "" {
		return "", false, fmt.Errorf("is empty; write a name such as \"hooks.example.com\", " +
			"\"*.example.com\" or an IP")
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ip.Unmap().String(), false, nil
	}
	if suffix, ok := strings.CutPrefix(host, "*."); ok {
		if err := CheckHostName(suffix); err != nil {
			return "", false, fmt.Errorf("%q: %w", host, err)
		}
		return "." + suffix, true, nil
	}
	if err := CheckHostName(host); err != nil {
		return "", false, fmt.Errorf("%q: %w", host, err)
	}
	return host, false, nil
}

// CheckHostName accepts DNS names made of letters, digits, '-' and '_' in
// dot-separated labels, lowercase. A pattern's leading "*." is cut off first.
func CheckHostName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("is not a valid host name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf(`has an empty or over-long label; write names like "api.example.com"`)
		}
		if err := checkLabel(label); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(label string) error {
	for _, c := range label {
		if c == '*' {
			return fmt.Errorf(`may use "*" only as the whole first label, as in "*.example.com"`)
		}
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf(`contains %q; only letters, digits, '-', '_' and a leading "*." `+
				"are allowed", c)
		}
	}
	return nil
}

// NormalizeHost lowercases a request host, drops a trailing dot and IPv6 brackets,
// and writes IPv4-mapped IPv6 addresses as IPv4, so that it can be matched against
// compiled routes.
func NormalizeHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	h = strings.Trim(h, "[]")
	if !mayBeAddr(h) {
		return h // a host name: parsing would only allocate an error
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// mayBeAddr rules out lowercase host names without parsing: the addresses
// netip.ParseAddr reads are made of hex digits, dots and colons up to a zone ('%').
func mayBeAddr(h string) bool {
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '%':
			return true
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
