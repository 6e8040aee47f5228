package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// recorder is a base dialer that notes every address it is asked for and then does
// what its dial function says.
type recorder struct {
	mu    sync.Mutex
	addrs []string
	dial  DialFunc
}

func (r *recorder) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, addr)
	r.mu.Unlock()
	return r.dial(ctx, network, addr)
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.addrs)
}

// refusingBase fails every dial; the tests that use it expect no dial at all.
func refusingBase() *recorder {
	return &recorder{dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("test dialer: no dial was expected")
	}}
}

// loopbackBase dials for real, but only loopback addresses.
func loopbackBase(t *testing.T) *recorder {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &recorder{dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("test dialer asked for %q, which is not a loopback address", addr)
			return nil, errors.New("test dialer: refusing a non-loopback address")
		}
		return d.DialContext(ctx, network, addr)
	}}
}

// pipeConn returns one end of an in-memory connection, closed when the test ends.
func pipeConn(t *testing.T) net.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}

// resolver answers from a table; a host with several answers gets them in turn,
// the last one repeating.
type resolver struct {
	mu      sync.Mutex
	answers map[string][][]string
	asked   []string
}

func (r *resolver) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	turns, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	turn := turns[min(countOf(r.asked, host), len(turns))-1]
	var ips []netip.Addr
	for _, s := range turn {
		ips = append(ips, netip.MustParseAddr(s))
	}
	return ips, nil
}

func (r *resolver) lookups() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.asked)
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// listen starts a loopback listener that accepts and counts connections.
func listen(t *testing.T) (port string, accepted func() int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestDialDeniesWithoutDialling(t *testing.T) {
	t.Parallel()
	answers := map[string][][]string{
		"internal.test": {{"10.0.0.5"}},
		"mixed.test":    {{"8.8.8.8", "10.0.0.1"}},
		"mixed6.test":   {{"2606:4700::1", "fd00:ec2::254"}},
		"nat64.test":    {{"64:ff9b::a9fe:a9fe"}},
		"mapped.test":   {{"::ffff:192.168.1.1"}},
		"rebind.nip.io": {{"127.0.0.1"}},
		"zone.test":     {{"fe80::1%eth0"}},
		"public.test":   {{"8.8.8.8"}},
		"cgnat.test":    {{"1.1.1.1", "100.64.0.9"}},
	}
	deny8 := certconfig.EgressConfig{DenyCIDRs: []string{"8.8.8.0/24"}}
	tests := []struct {
		name    string
		config  certconfig.EgressConfig
		addr    string
		reason  string
		lookups int
	}{
		{"private literal", certconfig.EgressConfig{}, "10.0.0.1:80", ReasonPrivate, 0},
		{"integer loopback", certconfig.EgressConfig{}, "2130706433:443", ReasonLoopback, 0},
		{"hex short loopback", certconfig.EgressConfig{}, "0x7f.1:80", ReasonLoopback, 0},
		{"octal private", certconfig.EgressConfig{}, "012.1:80", ReasonPrivate, 0},
		{"IPv6 loopback", certconfig.EgressConfig{}, "[::1]:80", ReasonLoopback, 0},
		{"mapped metadata", certconfig.EgressConfig{}, "[::ffff:169.254.169.254]:80",
			ReasonMetadata, 0},
		{"zoned link-local", certconfig.EgressConfig{}, "[fe80::1%eth0]:80",
			ReasonLinkLocal, 0},
		{"malformed number", certconfig.EgressConfig{}, "4294967296:80",
			ReasonInvalidHost, 0},
		{"name to private", certconfig.EgressConfig{}, "internal.test:443", ReasonPrivate, 1},
		{"public and private answers", certconfig.EgressConfig{}, "mixed.test:443",
			ReasonPrivate, 1},
		{"public and metadata IPv6 answers", certconfig.EgressConfig{}, "mixed6.test:443",
			ReasonMetadata, 1},
		{"public and CGNAT answers", certconfig.EgressConfig{}, "cgnat.test:443",
			ReasonCGNAT, 1},
		{"NAT64 answer", certconfig.EgressConfig{}, "nat64.test:443", ReasonMetadata, 1},
		{"mapped answer", certconfig.EgressConfig{}, "mapped.test:443", ReasonPrivate, 1},
		{"name to loopback", certconfig.EgressConfig{}, "rebind.nip.io:80",
			ReasonLoopback, 1},
		{"zoned answer", certconfig.EgressConfig{}, "zone.test:80", ReasonLinkLocal, 1},
		{"deny_cidrs on answer", deny8, "public.test:443", ReasonDenyCIDR, 1},
		{"deny_hosts before lookup", certconfig.EgressConfig{
			DenyHosts: []string{"*.test"}}, "public.test:443", ReasonDenyHost, 0},
		{"allow_hosts before lookup", certconfig.EgressConfig{
			AllowHosts: []string{"other.test"}}, "public.test:443", ReasonNotAllowedHost, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, res := refusingBase(), &resolver{answers: answers}
			dial := mustPolicy(t, tt.config).DialContext(base.DialContext, res.lookup)
			conn, err := dial(context.Background(), "tcp", tt.addr)
			if conn != nil {
				conn.Close()
			}
			wantDenied(t, err, tt.reason)
			if got := base.calls(); len(got) != 0 {
				t.Errorf("base dialer was called for %v", got)
			}
			if got := res.lookups(); got != tt.lookups {
				t.Errorf("lookups = %d, want %d", got, tt.lookups)
			}
		})
	}
}

func TestDialDeniedErrorNamesHost(t *testing.T) {
	t.Parallel()
	res := &resolver{answers: map[string][][]string{"db.test": {{"10.0.0.5"}}}}
	dial := mustPolicy(t, certconfig.EgressConfig{}).DialContext(refusingBase().DialContext,
		res.lookup)
	_, err := dial(context.Background(), "tcp", "db.test:5432")
	d := wantDenied(t, err, ReasonPrivate)
	if d.Host != "db.test" || d.IP != netip.MustParseAddr("10.0.0.5") {
		t.Errorf("got host %q IP %v, want db.test and 10.0.0.5", d.Host, d.IP)
	}
}

func TestDialLoopbackDeniedByDefault(t *testing.T) {
	t.Parallel()
	port, accepted := listen(t)
	base := refusingBase()
	dial := mustPolicy(t, certconfig.EgressConfig{}).DialContext(base.DialContext, nil)
	_, err := dial(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", port))
	wantDenied(t, err, ReasonLoopback)
	if len(base.calls()) != 0 || accepted() != 0 {
		t.Errorf("dialled %v, listener accepted %d; want nothing", base.calls(), accepted())
	}
}

func TestDialAllowedLoopback(t *testing.T) {
	t.Parallel()
	port, accepted := listen(t)
	res := &resolver{answers: map[string][][]string{"svc.test": {{"127.0.0.1"}}}}
	allow := certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}}
	tests := []struct {
		name   string
		lookup LookupFunc
		host   string
	}{
		{"literal with default resolver", nil, "127.0.0.1"},
		{"integer spelling", res.lookup, "2130706433"},
		{"name", res.lookup, "svc.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := loopbackBase(t)
			dial := mustPolicy(t, allow).DialContext(base.DialContext, tt.lookup)
			conn, err := dial(context.Background(), "tcp", net.JoinHostPort(tt.host, port))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			conn.Close()
			want := []string{net.JoinHostPort("127.0.0.1", port)}
			if got := base.calls(); !slices.Equal(got, want) {
				t.Errorf("base dialled %v, want %v (the checked address, never the name)",
					got, want)
			}
		})
	}
	t.Cleanup(func() {
		for end := time.Now().Add(5 * time.Second); accepted() < len(tests); {
			if time.Now().After(end) {
				t.Errorf("the listener accepted %d connections, want %d", accepted(), len(tests))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestDialRechecksEveryResolution(t *testing.T) {
	t.Parallel()
	port, _ := listen(t)
	res := &resolver{answers: map[string][][]string{
		"flip.test": {{"127.0.0.1"}, {"10.0.0.1"}},
	}}
	base := loopbackBase(t)
	allow := certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}}
	dial := mustPolicy(t, allow).DialContext(base.DialContext, res.lookup)
	addr := net.JoinHostPort("flip.test", port)

	conn, err := dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	conn.Close()

	_, err = dial(context.Background(), "tcp", addr)
	wantDenied(t, err, ReasonPrivate)
	if got := base.calls(); len(got) != 1 || res.lookups() != 2 {
		t.Errorf("dialled %v after %d lookups; want one dial and two lookups",
			got, res.lookups())
	}
}

func TestDialTriesAddressesInOrder(t *testing.T) {
	t.Parallel()
	refused := errors.New("connection refused")
	tests := []struct {
		name    string
		network string
		answer  []string
		fail    []string // addresses the base dialer refuses
		want    []string // addresses dialled, in order
		wantErr error
	}{
		{"first connects", "tcp", []string{"127.0.0.1", "::1"}, nil,
			[]string{"127.0.0.1:443"}, nil},
		{"falls through to second", "tcp", []string{"127.0.0.2", "127.0.0.1"},
			[]string{"127.0.0.2:443"}, []string{"127.0.0.2:443", "127.0.0.1:443"}, nil},
		{"all fail gives the first error", "tcp", []string{"127.0.0.2", "::1"},
			[]string{"127.0.0.2:443", "[::1]:443"},
			[]string{"127.0.0.2:443", "[::1]:443"}, refused},
		{"tcp4 skips IPv6", "tcp4", []string{"::1", "127.0.0.1"}, nil,
			[]string{"127.0.0.1:443"}, nil},
		{"tcp6 skips IPv4", "tcp6", []string{"127.0.0.1", "::ffff:127.0.0.3", "::1"}, nil,
			[]string{"[::1]:443"}, nil},
		{"mapped answer dialled as IPv4", "tcp", []string{"::ffff:127.0.0.1"}, nil,
			[]string{"127.0.0.1:443"}, nil},
	}
	allow := certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8", "::1"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := &recorder{dial: func(_ context.Context, _, addr string) (net.Conn, error) {
				if slices.Contains(tt.fail, addr) {
					return nil, refused
				}
				return pipeConn(t), nil
			}}
			res := &resolver{answers: map[string][][]string{"multi.test": {tt.answer}}}
			dial := mustPolicy(t, allow).DialContext(base.DialContext, res.lookup)
			conn, err := dial(context.Background(), tt.network, "multi.test:443")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || conn != nil {
					t.Fatalf("dial = %v, %v; want error %v", conn, err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if got := base.calls(); !slices.Equal(got, tt.want) {
				t.Errorf("dialled %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDialErrorsBeforeDialling(t *testing.T) {
	t.Parallel()
	answers := map[string][][]string{"empty.test": {{}}, "v6only.test": {{"::1"}}}
	allow := certconfig.EgressConfig{AllowCIDRs: []string{"::1"}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		network string
		addr    string
		check   func(error) bool
	}{
		{"missing port", context.Background(), "tcp", "no-port.test", isNotDenied},
		{"empty host", context.Background(), "tcp", ":80", func(err error) bool {
			return strings.Contains(err.Error(), "the host is empty")
		}},
		{"unknown host", context.Background(), "tcp", "missing.test:80", isDNSNotFound},
		{"empty answer", context.Background(), "tcp", "empty.test:80", isNotDenied},
		{"no address of the family", context.Background(), "tcp4", "v6only.test:80",
			isNotDenied},
		{"context already done", cancelled, "tcp", "v6only.test:80", func(err error) bool {
			return errors.Is(err, context.Canceled)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, res := refusingBase(), &resolver{answers: answers}
			dial := mustPolicy(t, allow).DialContext(base.DialContext, res.lookup)
			conn, err := dial(tt.ctx, tt.network, tt.addr)
			if conn != nil || err == nil || !tt.check(err) {
				t.Fatalf("dial = %v, %v; not the error expected", conn, err)
			}
			if got := base.calls(); len(got) != 0 {
				t.Errorf("base dialer was called for %v", got)
			}
		})
	}
}

func isNotDenied(err error) bool {
	var d *DeniedError
	return !errors.As(err, &d)
}

func isDNSNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

func TestDialSharesTheDeadline(t *testing.T) {
	t.Parallel()
	var deadlines []time.Duration
	var mu sync.Mutex
	base := &recorder{dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
		d, _ := ctx.Deadline()
		mu.Lock()
		deadlines = append(deadlines, time.Until(d))
		mu.Unlock()
		if addr == "127.0.0.2:443" {
			<-ctx.Done() // an address that never answers
			return nil, ctx.Err()
		}
		return pipeConn(t), nil
	}}
	res := &resolver{answers: map[string][][]string{"slow.test": {{"127.0.0.2", "127.0.0.1"}}}}
	allow := certconfig.EgressConfig{AllowCIDRs: []string{"127.0.0.0/8"}}
	dial := mustPolicy(t, allow).DialContext(base.DialContext, res.lookup)

	total := 4 * minAttempt
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	if _, err := dial(ctx, "tcp", "slow.test:443"); err != nil {
		t.Fatalf("dial: %v (the second address should have had time left)", err)
	}
	if len(deadlines) != 2 || deadlines[0] > total/2 || deadlines[1] < total/4 {
		t.Errorf("attempt deadlines %v of %v; want the first to get about half", deadlines, total)
	}
}

func TestAttemptContextFloor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	tests := []struct {
		left int
		min  time.Duration
		max  time.Duration
	}{
		{1, 59 * time.Minute, time.Hour},
		{2, 29 * time.Minute, 30 * time.Minute},
		{100000, minAttempt, minAttempt},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.left), func(t *testing.T) {
			t.Parallel()
			actx, acancel := attemptContext(ctx, tt.left)
			defer acancel()
			d, _ := actx.Deadline()
			if got := time.Until(d); got < tt.min-time.Second || got > tt.max {
				t.Errorf("share = %v, want between %v and %v", got, tt.min, tt.max)
			}
		})
	}
}
