package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// strictSnapshot has the default egress table: every internal address refused.
func strictSnapshot(t testing.TB, certs ...*certconfig.Certificate) *certconfig.Snapshot {
	s := newSnapshot(t, certconfig.ProxyConfig{}, certs)
	s.Config.Egress = certconfig.EgressConfig{}
	return s
}

// checkDenied asserts an egress_denied answer whose message holds every one of
// want, and that nothing was dialled.
func checkDenied(t *testing.T, h *harness, resp *http.Response, body []byte, want ...string) {
	t.Helper()
	var pe proxyError
	if err := json.Unmarshal(body, &pe); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusForbidden || pe.Error.Code != CodeEgressDenied ||
		resp.Header.Get(ErrorHeader) != CodeEgressDenied {
		t.Fatalf("status %d, header %q, body %s", resp.StatusCode,
			resp.Header.Get(ErrorHeader), body)
	}
	for _, w := range want {
		if !strings.Contains(pe.Error.Message, w) {
			t.Errorf("message %q does not name %q", pe.Error.Message, w)
		}
	}
	if d := h.dialed(); len(d) != 0 {
		t.Errorf("the proxy dialled %v", d)
	}
}

// resolveTo is a resolver that answers every name with ip.
func resolveTo(ip string) func(context.Context, string) ([]netip.Addr, error) {
	return func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr(ip)}, nil
	}
}

func TestEgressDenied(t *testing.T) {
	t.Parallel()
	up := plainUpstream(t, echoHandler)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	cases := []struct {
		name   string
		strict bool // no allow_cidrs exception for loopback
		url    string
		header []string
		lookup func(context.Context, string) ([]netip.Addr, error)
		want   []string
	}{
		{name: "private address", url: "http://10.0.0.1/",
			want: []string{"10.0.0.1", "egress.deny_private"}},
		{name: "metadata address", url: "http://169.254.169.254/latest/",
			want: []string{"169.254.169.254", "metadata"}},
		{name: "private address, with a certificate", url: "http://10.1.2.3/",
			header: []string{DefaultCertHeader, "acme"}, want: []string{"10.1.2.3"}},
		{name: "loopback without an exception", strict: true,
			url: "http://127.0.0.1:" + port + "/", want: []string{"127.0.0.1", "loopback"}},
		{name: "integer host", strict: true, url: "http://2130706433:" + port + "/",
			want: []string{"127.0.0.1", `"2130706433"`}},
		{name: "octal host", strict: true, url: "http://0177.0.0.1:" + port + "/",
			want: []string{"127.0.0.1", `"0177.0.0.1"`}},
		{name: "hex host", strict: true, url: "http://0x7f.1:" + port + "/",
			want: []string{"127.0.0.1", `"0x7f.1"`}},
		{name: "integer host for a private address", url: "http://167772161/",
			want: []string{"10.0.0.1", `"167772161"`}},
		{name: "IPv4-mapped IPv6 address", url: "http://[::ffff:10.0.0.1]/",
			want: []string{"10.0.0.1"}},
		{name: "number-like host that is no address", url: "http://1.2.3.4.5/",
			want: []string{`"1.2.3.4.5"`}},
		{name: "name resolving inside", url: "http://hooks.example/",
			lookup: resolveTo("10.0.0.1"), want: []string{"10.0.0.1", `"hooks.example"`}},
		{name: "name resolving inside, with a certificate", url: "http://hooks.example/",
			header: []string{DefaultCertHeader, "acme"},
			lookup: resolveTo("192.168.1.10"), want: []string{"192.168.1.10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("acme")})
			if tc.strict {
				s = strictSnapshot(t, clientCert("acme"))
			}
			var opts []harnessOption
			if tc.lookup != nil {
				opts = append(opts, withLookup(tc.lookup))
			}
			h := newHarness(t, s, opts...)
			resp, body := h.get(t, tc.url, tc.header...)
			checkDenied(t, h, resp, body, tc.want...)
			if o := h.lastOutcome(t); o.Code != CodeEgressDenied || o.Status != 403 {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}

// TestEgressAllowCIDRs sends the same request with and without the loopback
// exception, by address and by a name that resolves to it.
func TestEgressAllowCIDRs(t *testing.T) {
	t.Parallel()
	up := plainUpstream(t, echoHandler)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	for _, target := range []string{"127.0.0.1", "local.example", "2130706433"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			url := "http://" + net.JoinHostPort(target, port) + "/"
			allowed := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil),
				withLookup(resolveTo("127.0.0.1")))
			resp, body := allowed.get(t, url)
			decodeEcho(t, resp, body)
			if d := allowed.dialed(); len(d) != 1 || d[0] != "127.0.0.1:"+port {
				t.Errorf("dialled %v, want the checked address only", d)
			}

			denied := newHarness(t, strictSnapshot(t), withLookup(resolveTo("127.0.0.1")))
			resp, body = denied.get(t, url)
			checkDenied(t, denied, resp, body, "127.0.0.1", "loopback")
		})
	}
}

// TestEgressReResolves resolves a name to loopback, then to a private address:
// an upstream that closes every connection makes the second request dial again,
// and that dial is refused.
func TestEgressReResolves(t *testing.T) {
	t.Parallel()
	up := plainUpstream(t, closeAfterEach)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	var calls atomic.Int32
	lookup := func(context.Context, string) ([]netip.Addr, error) {
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
	}
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil), withLookup(lookup))
	url := "http://rebind.example:" + port + "/"

	resp, body := h.get(t, url)
	decodeEcho(t, resp, body)
	h.outcomesAtLeast(t, 1)
	resp, body = h.get(t, url)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "10.0.0.1") {
		t.Fatalf("second request: status %d, body %s", resp.StatusCode, body)
	}
	if d := h.dialed(); len(d) != 1 || calls.Load() != 2 {
		t.Errorf("dialled %v after %d lookups, want one dial after two", d, calls.Load())
	}
}

// TestEgressReload takes the loopback exception away: the pooled connection,
// checked under the old table, is not reused, and the new dial is refused.
func TestEgressReload(t *testing.T) {
	t.Parallel()
	up := plainUpstream(t, echoHandler)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, nil),
		withLookup(resolveTo("127.0.0.1")))
	url := "http://keepalive.example:" + port + "/"
	resp, body := h.get(t, url)
	decodeEcho(t, resp, body)

	h.cur.Swap(strictSnapshot(t))
	resp, body = h.get(t, url)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(ErrorHeader) != CodeEgressDenied {
		t.Fatalf("after the reload: status %d, body %s", resp.StatusCode, body)
	}
	if d := h.dialed(); len(d) != 1 {
		t.Errorf("dialled %v, want only the first request's dial", d)
	}
}

// TestNumericHostRoutes checks that a host spelling an address is routed, dialled
// and verified as that address.
func TestNumericHostRoutes(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "https://"))
	route := certconfig.RouteConfig{Host: "127.0.0.1", Certificate: "acme"}
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}, route))
	for _, host := range []string{"2130706433", "0x7f.1", "127.1"} {
		resp, body := h.get(t, "http://"+net.JoinHostPort(host, port)+"/")
		if e := decodeEcho(t, resp, body); e.ClientCN != "acme" {
			t.Errorf("%s: upstream saw certificate %q, want the route's", host, e.ClientCN)
		}
	}
	for _, d := range h.dialed() {
		if d != "127.0.0.1:"+port {
			t.Errorf("dialled %q", d)
		}
	}
}

func TestConnectEgressDenied(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target string
		want         []string
	}{
		{"private address", "10.0.0.1:443", []string{"10.0.0.1", "egress.deny_private"}},
		{"integer host", "2130706433:443", []string{"127.0.0.1", `"2130706433"`}},
		{"no port", "169.254.169.254", []string{"169.254.169.254"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, strictSnapshot(t))
			resp, body := rawConnect(t, h, tc.target)
			checkDenied(t, h, resp, body, tc.want...)
			if o := h.lastOutcome(t); !o.Tunnel || o.Code != CodeEgressDenied || o.Status != 403 {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}

// TestConnectEgressDeniedAfterLookup refuses a tunnel whose name resolves inside:
// the name passes, the address does not, and nothing is dialled.
func TestConnectEgressDeniedAfterLookup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, strictSnapshot(t), withLookup(resolveTo("10.9.8.7")))
	resp, body := rawConnect(t, h, "inside.example:443")
	checkDenied(t, h, resp, body, "10.9.8.7", `"inside.example"`)
}
