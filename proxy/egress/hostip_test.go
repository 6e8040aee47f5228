package egress

import (
	"net/netip"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

func TestParseHostIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want string // "" means not an address
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0177.0000.0000.0001", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0X7F.0x0.0x0.0x1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0x00000000007f000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"10.1.2", "10.1.0.2"},
		{"10.65535", "10.0.255.255"},
		{"10.1.65535", "10.1.255.255"},
		{"10.1.65536", ""},
		{"10.0x10203", "10.1.2.3"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"0.0x.0.0", "0.0.0.0"},
		{"169.254.43518", "169.254.169.254"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"2852039166", "169.254.169.254"},
		{"0x08080808", "8.8.8.8"},
		{"134744072", "8.8.8.8"},
		{"127.0.0.1.", "127.0.0.1"},
		{"127.0.0.1 trailing", "127.0.0.1"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"256.0.0.1", ""},
		{"1.256.0.1", ""},
		{"1.2.3.256", ""},
		{"1.2.3.4.5", ""},
		{"08.0.0.1", ""},
		{"0x1g.0.0.1", ""},
		{"1..2.3", ""},
		{"-1.0.0.1", ""},
		{"+1.0.0.1", ""},
		{"1_0.0.0.1", ""},
		{" 127.0.0.1", ""},
		{"", ""},
		{".", ""},
		{"[]", ""},
		{"example.com", ""},
		{"1.2.3.4.nip.io", ""},
		{"localhost", ""},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
		{"::ffff:7f00:1", "::ffff:127.0.0.1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"[fe80::1%eth0]", "fe80::1%eth0"},
		{"[FD00:EC2::254]", "fd00:ec2::254"},
		{"[127.0.0.1]", "127.0.0.1"},
		{"[0x7f.1]", "127.0.0.1"},
		{"[::1", ""},
		{"::1]", ""},
		{"1.2.3.4%eth0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseHostIP(tt.host)
			if tt.want == "" {
				if ok {
					t.Fatalf("ParseHostIP(%q) = %v, want not an address", tt.host, got)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); !ok || got != want {
				t.Fatalf("ParseHostIP(%q) = %v, %v; want %v", tt.host, got, ok, want)
			}
		})
	}
}

// TestOddSpellingsArePolicedAsAddresses checks hosts through the policy the way the
// dialer reads them: the address they spell decides, never the spelling.
func TestOddSpellingsArePolicedAsAddresses(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, certconfig.EgressConfig{})
	tests := []struct {
		host   string
		reason string // "" means allowed
	}{
		{"2130706433", ReasonLoopback},
		{"0177.0.0.1", ReasonLoopback},
		{"0x7f.0.0.1", ReasonLoopback},
		{"0x7f000001", ReasonLoopback},
		{"127.1", ReasonLoopback},
		{"10.1.2", ReasonPrivate},
		{"012.0.0.1", ReasonPrivate},
		{"0xa9fea9fe", ReasonMetadata},
		{"169.254.43518", ReasonMetadata},
		{"0", ReasonUnspecified},
		{"[::ffff:a9fe:a9fe]", ReasonMetadata},
		{"[fe80::1%25eth0]", ReasonLinkLocal},
		{"0x08080808", ""},
		{"134744072", ""},
		{"8.8.8.8.", ""},
		{"[2606:4700:4700::1111]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			ip, ok := ParseHostIP(tt.host)
			if !ok {
				t.Fatalf("ParseHostIP(%q): not an address", tt.host)
			}
			err := p.CheckIP(ip)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("CheckIP(%v) for %q = %v, want allowed", ip, tt.host, err)
				}
				return
			}
			wantDenied(t, err, tt.reason)
		})
	}
}
