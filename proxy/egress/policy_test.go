package egress

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

func mustPolicy(t *testing.T, c certconfig.EgressConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(c)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

func boolPtr(b bool) *bool { return &b }

// wantDenied fails unless err is a *DeniedError with the given reason.
func wantDenied(t *testing.T, err error, reason string) *DeniedError {
	t.Helper()
	var d *DeniedError
	if !errors.As(err, &d) {
		t.Fatalf("error = %v, want *DeniedError with reason %q", err, reason)
	}
	if d.Reason != reason {
		t.Fatalf("reason = %q, want %q (error: %v)", d.Reason, reason, err)
	}
	if !slices.Contains(Reasons(), d.Reason) {
		t.Fatalf("reason %q is not listed by Reasons()", d.Reason)
	}
	return d
}

func TestCheckIPDeniesSpecialRanges(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, certconfig.EgressConfig{})
	tests := []struct {
		ip     string
		reason string
	}{
		{"127.0.0.1", ReasonLoopback},
		{"127.255.255.254", ReasonLoopback},
		{"::1", ReasonLoopback},
		{"10.0.0.1", ReasonPrivate},
		{"10.255.255.255", ReasonPrivate},
		{"172.16.0.1", ReasonPrivate},
		{"172.31.255.255", ReasonPrivate},
		{"192.168.1.1", ReasonPrivate},
		{"100.64.0.1", ReasonCGNAT},
		{"100.127.255.255", ReasonCGNAT},
		{"169.254.0.1", ReasonLinkLocal},
		{"169.254.169.254", ReasonMetadata},
		{"169.254.170.2", ReasonMetadata},
		{"169.254.170.23", ReasonMetadata},
		{"100.100.100.200", ReasonMetadata},
		{"fd00:ec2::254", ReasonMetadata},
		{"fd00:ec2::23", ReasonMetadata},
		{"fe80::1", ReasonLinkLocal},
		{"febf:ffff::1", ReasonLinkLocal},
		{"fe80::1%eth0", ReasonLinkLocal},
		{"0.0.0.0", ReasonUnspecified},
		{"0.1.2.3", ReasonUnspecified},
		{"::", ReasonUnspecified},
		{"224.0.0.1", ReasonMulticast},
		{"239.255.255.250", ReasonMulticast},
		{"ff02::1", ReasonMulticast},
		{"ff05::1:3", ReasonMulticast},
		{"255.255.255.255", ReasonReserved},
		{"240.0.0.1", ReasonReserved},
		{"254.1.2.3", ReasonReserved},
		{"fc00::1", ReasonPrivate},
		{"fd12:3456:789a::1", ReasonPrivate},
		{"fec0::1", ReasonPrivate},
		{"192.0.0.8", ReasonReserved},
		{"198.18.0.1", ReasonReserved},
		{"198.19.255.255", ReasonReserved},
		{"192.0.2.1", ReasonReserved},
		{"198.51.100.7", ReasonReserved},
		{"203.0.113.9", ReasonReserved},
		{"2001:db8::1", ReasonReserved},
		{"3fff::1", ReasonReserved},
		{"2001:2::1", ReasonReserved},
		{"100::1", ReasonReserved},

		// IPv4-mapped IPv6.
		{"::ffff:127.0.0.1", ReasonLoopback},
		{"::ffff:10.0.0.1", ReasonPrivate},
		{"::ffff:169.254.169.254", ReasonMetadata},
		{"::ffff:100.64.1.1", ReasonCGNAT},
		{"::ffff:0.0.0.0", ReasonUnspecified},
		{"::ffff:224.0.0.1", ReasonMulticast},
		// IPv4-compatible and IPv4-translated IPv6.
		{"::10.0.0.1", ReasonPrivate},
		{"::127.0.0.1", ReasonLoopback},
		{"::169.254.169.254", ReasonMetadata},
		{"::ffff:0:10.0.0.1", ReasonPrivate},
		{"::ffff:0:127.0.0.1", ReasonLoopback},
		// NAT64, well-known prefix.
		{"64:ff9b::a00:1", ReasonPrivate},
		{"64:ff9b::127.0.0.1", ReasonLoopback},
		{"64:ff9b::169.254.169.254", ReasonMetadata},
		{"64:ff9b::192.168.0.1", ReasonPrivate},
		// NAT64, local-use prefix at /96, /64 and /48.
		{"64:ff9b:1::a00:1", ReasonPrivate},
		{"64:ff9b:1:0:a:0:100:0", ReasonPrivate},
		{"64:ff9b:1:7f00:0:100::", ReasonLoopback},
		// 6to4.
		{"2002:a00:1::1", ReasonPrivate},
		{"2002:7f00:1::", ReasonLoopback},
		{"2002:a9fe:a9fe::1", ReasonMetadata},
		{"2002:c0a8:101::1", ReasonPrivate},
		// Teredo: the server address, then the (inverted) client address.
		{"2001:0:7f00:1::f7f7:fbfb", ReasonLoopback},
		{"2001:0:808:808::f5ff:fffe", ReasonPrivate},
		{"2001:0:808:808::5601:5601", ReasonMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tt.ip)
			d := wantDenied(t, p.CheckIP(ip), tt.reason)
			if d.IP != ip || d.Rule != "egress.deny_private" || d.Host != "" {
				t.Errorf("got IP %v rule %q host %q, want %v, egress.deny_private, no host",
					d.IP, d.Rule, d.Host, ip)
			}
		})
	}
}

func TestCheckIPAllowsPublic(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, certconfig.EgressConfig{})
	for _, s := range []string{
		"8.8.8.8", "1.1.1.1", "9.255.255.255", "11.0.0.1", "172.15.255.255",
		"172.32.0.1", "192.167.255.255", "192.169.0.1", "100.63.255.255", "100.128.0.1",
		"169.253.255.255", "169.255.0.1", "198.17.255.255", "198.20.0.1", "192.0.1.1",
		"223.255.255.255", "1.0.0.0",
		"2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8",
		"::8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b:1::808:808", "64:ff9b:1:0:8:808:800:0",
		"2002:808:808::1", "2001:0:808:808::fefe:fefe", "fbff::1", "fe7f::1",
	} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			if err := p.CheckIP(netip.MustParseAddr(s)); err != nil {
				t.Errorf("CheckIP(%s) = %v, want allowed", s, err)
			}
		})
	}
}

func TestCheckIPWithCIDRs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config certconfig.EgressConfig
		ip     string
		reason string // "" means allowed
	}{
		{"allow loopback range", certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}},
			"127.0.0.1", ""},
		{"allow covers mapped form",
			certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}},
			"::ffff:127.0.0.1", ""},
		{"allow covers NAT64 form",
			certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}},
			"64:ff9b::7f00:1", ""},
		{"allow is only for its range",
			certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}},
			"10.0.0.1", ReasonPrivate},
		{"allow written as mapped IPv6 prefix",
			certconfig.EgressConfig{AllowCIDRs: []string{"::ffff:10.0.0.0/104"}},
			"10.9.8.7", ""},
		{"bare IPv4 is a /32", certconfig.EgressConfig{AllowCIDRs: []string{"169.254.169.254"}},
			"169.254.169.254", ""},
		{"bare IPv4 is only a /32",
			certconfig.EgressConfig{AllowCIDRs: []string{"169.254.169.254"}},
			"169.254.169.253", ReasonLinkLocal},
		{"bare IPv6 is a /128", certconfig.EgressConfig{AllowCIDRs: []string{"::1"}},
			"::1", ""},
		{"allowing the 6to4 range does not allow what it carries",
			certconfig.EgressConfig{AllowCIDRs: []string{"2002::/16"}},
			"2002:a00:1::1", ReasonPrivate},
		{"deny beats allow", certconfig.EgressConfig{
			AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.1.0.0/16"}},
			"10.1.2.3", ReasonDenyCIDR},
		{"allow outside the deny", certconfig.EgressConfig{
			AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.1.0.0/16"}},
			"10.2.0.1", ""},
		{"deny a public range", certconfig.EgressConfig{DenyCIDRs: []string{"8.8.8.0/24"}},
			"8.8.8.8", ReasonDenyCIDR},
		{"deny reaches mapped form",
			certconfig.EgressConfig{DenyCIDRs: []string{"8.8.8.0/24"}},
			"::ffff:8.8.8.8", ReasonDenyCIDR},
		{"deny reaches NAT64 form",
			certconfig.EgressConfig{DenyCIDRs: []string{"8.8.8.0/24"}},
			"64:ff9b::808:808", ReasonDenyCIDR},
		{"deny IPv6", certconfig.EgressConfig{DenyCIDRs: []string{"2606:4700::/32"}},
			"2606:4700:4700::1111", ReasonDenyCIDR},
		{"deny_private off allows private",
			certconfig.EgressConfig{DenyPrivate: boolPtr(false)}, "10.0.0.1", ""},
		{"deny_private off allows loopback",
			certconfig.EgressConfig{DenyPrivate: boolPtr(false)}, "::1", ""},
		{"deny_private off allows metadata",
			certconfig.EgressConfig{DenyPrivate: boolPtr(false)}, "169.254.169.254", ""},
		{"deny_private off keeps deny_cidrs", certconfig.EgressConfig{
			DenyPrivate: boolPtr(false), DenyCIDRs: []string{"169.254.169.254/32"}},
			"169.254.169.254", ReasonDenyCIDR},
		{"deny_private on explicitly",
			certconfig.EgressConfig{DenyPrivate: boolPtr(true)}, "192.168.0.1", ReasonPrivate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustPolicy(t, tt.config)
			err := p.CheckIP(netip.MustParseAddr(tt.ip))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("CheckIP(%s) = %v, want allowed", tt.ip, err)
				}
				return
			}
			wantDenied(t, err, tt.reason)
		})
	}
}

func TestCheckIPInvalidAddress(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, certconfig.EgressConfig{DenyPrivate: boolPtr(false)})
	if err := p.CheckIP(netip.Addr{}); err == nil {
		t.Fatal("CheckIP(zero Addr) = nil, want a denial")
	}
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	lists := certconfig.EgressConfig{
		DenyHosts:  []string{"blocked.example.com", "*.internal.example", "127.0.0.1"},
		AllowHosts: []string{"*.Example.COM.", "api.partner.example", "8.8.8.8"},
	}
	denyOnly := certconfig.EgressConfig{DenyHosts: []string{"*.corp"}}
	tests := []struct {
		name   string
		config certconfig.EgressConfig
		host   string
		reason string // "" means allowed
	}{
		{"no lists allow any name", certconfig.EgressConfig{}, "anything.test", ""},
		{"wildcard allow", lists, "hooks.example.com", ""},
		{"wildcard allow, deeper", lists, "a.b.example.com", ""},
		{"wildcard allow, case and dot", lists, "HOOKS.Example.Com.", ""},
		{"wildcard does not match its suffix", lists, "example.com", ReasonNotAllowedHost},
		{"wildcard does not match a longer label", lists, "badexample.com",
			ReasonNotAllowedHost},
		{"exact allow", lists, "api.partner.example", ""},
		{"exact allow is not a wildcard", lists, "x.api.partner.example",
			ReasonNotAllowedHost},
		{"not in allow list", lists, "elsewhere.test", ReasonNotAllowedHost},
		{"deny beats allow", lists, "blocked.example.com", ReasonDenyHost},
		{"deny, case and dot", lists, "BLOCKED.example.com.", ReasonDenyHost},
		{"wildcard deny", lists, "db.internal.example", ReasonDenyHost},
		{"address allowed by list", lists, "8.8.8.8", ""},
		{"address allowed in hex spelling", lists, "0x08080808", ""},
		{"address not in allow list", lists, "1.1.1.1", ReasonNotAllowedHost},
		{"address denied in short spelling", lists, "127.1", ReasonDenyHost},
		{"address denied in integer spelling", lists, "2130706433", ReasonDenyHost},
		{"address denied through mapped IPv6", lists, "[::ffff:127.0.0.1]", ReasonDenyHost},
		{"deny only list leaves others", denyOnly, "api.example.net", ""},
		{"deny only list", denyOnly, "git.corp", ReasonDenyHost},
		{"number that is no address", certconfig.EgressConfig{}, "4294967296",
			ReasonInvalidHost},
		{"hex that is no address", certconfig.EgressConfig{}, "1.2.3.0x1ff",
			ReasonInvalidHost},
		{"too many parts", certconfig.EgressConfig{}, "1.2.3.4.5", ReasonInvalidHost},
		{"bad octal", certconfig.EgressConfig{}, "010.08", ReasonInvalidHost},
		{"digits inside a name are fine", certconfig.EgressConfig{}, "1.2.3.4.nip.io", ""},
		{"hex-like label that is not hex", certconfig.EgressConfig{}, "a.0xfg", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := mustPolicy(t, tt.config).CheckHost(tt.host)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("CheckHost(%q) = %v, want allowed", tt.host, err)
				}
				return
			}
			d := wantDenied(t, err, tt.reason)
			if d.Host != tt.host || d.IP.IsValid() {
				t.Errorf("got host %q IP %v, want host %q and no IP", d.Host, d.IP, tt.host)
			}
		})
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, certconfig.EgressConfig{
		DenyCIDRs: []string{"1.1.1.1/32", "8.8.8.0/24"},
		DenyHosts: []string{"x.test", "*.internal"},
	})
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"private with host", p.checkIP("internal.example", netip.MustParseAddr("10.0.0.5")),
			`egress denied: 10.0.0.5 (for host "internal.example") is a private address ` +
				`(RFC 1918); add it to egress.allow_cidrs to allow it`},
		{"metadata named", p.CheckIP(netip.MustParseAddr("169.254.169.254")),
			`egress denied: 169.254.169.254 is the cloud instance metadata service; ` +
				`add it to egress.allow_cidrs to allow it`},
		{"embedded address named in the fix",
			p.checkIP("h.test", netip.MustParseAddr("64:ff9b::a00:1")),
			`egress denied: 64:ff9b::a00:1 (for host "h.test") carries 10.0.0.1 (NAT64), ` +
				`a private address (RFC 1918); add 10.0.0.1/32 to egress.allow_cidrs ` +
				`to allow it`},
		{"deny_cidrs entry named", p.CheckIP(netip.MustParseAddr("8.8.8.8")),
			`egress denied: 8.8.8.8 is in egress.deny_cidrs[1] (8.8.8.0/24); ` +
				`remove that entry to allow it`},
		{"deny_hosts entry named", p.CheckHost("db.internal"),
			`egress denied: host "db.internal" matches egress.deny_hosts[1] ("*.internal"); ` +
				`remove that entry to allow it`},
		{"host equal to the address is not repeated",
			p.checkIP("127.0.0.1", netip.MustParseAddr("127.0.0.1")),
			`egress denied: 127.0.0.1 is a loopback address; ` +
				`add it to egress.allow_cidrs to allow it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.err == nil {
				t.Fatal("got no error")
			}
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("message\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestDeniedErrorZeroValue(t *testing.T) {
	t.Parallel()
	d := &DeniedError{Host: "h.test", Rule: "egress.deny_hosts[0]", Reason: ReasonDenyHost}
	want := `egress denied: host "h.test" is refused by egress.deny_hosts[0] (deny_host)`
	if got := d.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNewPolicyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config certconfig.EgressConfig
		want   []string
	}{
		{"prefix too long", certconfig.EgressConfig{
			AllowCIDRs: []string{"10.0.0.0/8", "::1", "10.0.0.0/33"}},
			[]string{`egress.allow_cidrs[2]: "10.0.0.0/33" is not a CIDR; ` +
				`write it like "10.0.0.0/8"`}},
		{"not an address", certconfig.EgressConfig{DenyCIDRs: []string{"intranet"}},
			[]string{`egress.deny_cidrs[0]: "intranet" is not a CIDR`}},
		{"zone in a CIDR list", certconfig.EgressConfig{DenyCIDRs: []string{"fe80::1%eth0"}},
			[]string{`egress.deny_cidrs[0]: "fe80::1%eth0" is not a CIDR`}},
		{"empty host", certconfig.EgressConfig{AllowHosts: []string{"a.test", " "}},
			[]string{`egress.allow_hosts[1]: is empty; remove it or write a name`}},
		{"wildcard in the middle", certconfig.EgressConfig{DenyHosts: []string{"a.*.test"}},
			[]string{`egress.deny_hosts[0]: "a.*.test" may use "*" only as the whole ` +
				`first label`}},
		{"bare wildcard", certconfig.EgressConfig{DenyHosts: []string{"*"}},
			[]string{`egress.deny_hosts[0]: "*" may use "*" only`}},
		{"space in a name", certconfig.EgressConfig{DenyHosts: []string{"a b.test"}},
			[]string{`egress.deny_hosts[0]: "a b.test" contains ' '`}},
		{"empty label", certconfig.EgressConfig{AllowHosts: []string{"a..test"}},
			[]string{`egress.allow_hosts[0]: "a..test" has an empty or over-long label`}},
		{"range in a host list", certconfig.EgressConfig{DenyHosts: []string{"10.0.0.0/8"}},
			[]string{`egress.deny_hosts[0]: "10.0.0.0/8" is an address range; ` +
				`put it in egress.allow_cidrs or egress.deny_cidrs`}},
		{"every error reported", certconfig.EgressConfig{
			AllowCIDRs: []string{"x"}, DenyHosts: []string{"", "ok.test", "*x.test"}},
			[]string{"egress.allow_cidrs[0]:", "egress.deny_hosts[0]:",
				"egress.deny_hosts[2]:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPolicy(tt.config)
			if err == nil || p != nil {
				t.Fatalf("NewPolicy = %v, %v; want an error", p, err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

func TestNewPolicyAcceptsValidLists(t *testing.T) {
	t.Parallel()
	_, err := NewPolicy(certconfig.EgressConfig{
		AllowCIDRs: []string{"10.0.0.0/8", " 192.168.1.7 ", "fd00::/8", "::1", "10.1.2.3/8"},
		DenyCIDRs:  []string{"8.8.8.8/32"},
		AllowHosts: []string{"api.example.com", "*.example.net", "Host_1.test.", "[::1]"},
		DenyHosts:  []string{"0x7f.1", "*.xn--bcher-kva.example"},
	})
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
}
