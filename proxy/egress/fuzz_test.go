package egress

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseHostIP checks that ParseHostIP never panics, agrees with netip.ParseAddr
// wherever that accepts the host, and reads its own output back unchanged.
func FuzzParseHostIP(f *testing.F) {
	for _, seed := range []string{"127.0.0.1", "0x7f.1", "[::1]", "example.com"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got, ok := ParseHostIP(host)
		if ok && !got.IsValid() {
			t.Fatalf("ParseHostIP(%q) reported an invalid address", host)
		}
		if want, err := netip.ParseAddr(host); err == nil && (!ok || got != want) {
			t.Fatalf("ParseHostIP(%q) = %v, %v; netip.ParseAddr gives %v", host, got, ok, want)
		}
		if !ok {
			return
		}
		if again, ok := ParseHostIP(got.String()); !ok || again != got {
			t.Fatalf("ParseHostIP(%q) = %v, but its text reads back as %v, %v",
				host, got, again, ok)
		}
		if got.Is4() && strings.Trim(host, "0123456789.") == "" && !looksNumeric(host) &&
			strings.Trim(host, ".") != "" {
			t.Fatalf("host %q parsed as %v but does not look numeric", host, got)
		}
	})
}
