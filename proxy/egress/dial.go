package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DialFunc has the shape of net.Dialer.DialContext.
type DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// LookupFunc resolves a host name to its addresses.
type LookupFunc = func(ctx context.Context, host string) ([]netip.Addr, error)

// minAttempt is the least time an address gets when a dial deadline is shared
// between several addresses, so that a long answer does not starve every attempt.
const minAttempt = 500 * time.Millisecond

// DialContext returns a dial function that enforces the policy on every call. It
// checks the host by name, reads it as an address (see ParseHostIP) or resolves it
// with lookup (nil means net.DefaultResolver), and refuses the host if any of its
// addresses is refused, with a *DeniedError and without calling base. Otherwise it
// dials the checked addresses, never the name, in order until one connects, so a
// second resolution cannot change where the connection goes. Because each call
// resolves afresh, a name that later points inside is refused on that later call.
func (p *Policy) DialContext(base DialFunc, lookup LookupFunc) DialFunc {
	if lookup == nil {
		lookup = lookupIP
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("egress: dial %q: %w", addr, err)
		}
		if host == "" {
			// net.Dial reads an empty host as this machine; a destination must be named.
			return nil, fmt.Errorf("egress: dial %q: the host is empty; name a destination", addr)
		}
		ips, err := p.resolve(ctx, lookup, host)
		if err != nil {
			return nil, err
		}
		ips = keepFamily(network, ips)
		if len(ips) == 0 {
			return nil, fmt.Errorf("egress: dial %q: host has no address for %s", addr, network)
		}
		conn, err := dialEach(ctx, base, network, port, ips)
		if err != nil {
			return nil, fmt.Errorf("egress: dial %q: %w", addr, err)
		}
		return conn, nil
	}
}

func lookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolve checks host and returns its addresses once every one of them is allowed.
func (p *Policy) resolve(ctx context.Context, lookup LookupFunc, host string) (
	[]netip.Addr, error) {
	if err := p.CheckHost(host); err != nil {
		return nil, err
	}
	if ip, ok := ParseHostIP(host); ok {
		if d := p.checkIP(host, ip); d != nil {
			return nil, d
		}
		return []netip.Addr{ip}, nil
	}
	ips, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("egress: resolve %q: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("egress: resolve %q: the answer holds no address", host)
	}
	for _, ip := range ips {
		if d := p.checkIP(host, ip); d != nil {
			return nil, d
		}
	}
	return ips, nil
}

// keepFamily drops the addresses that network ("tcp4", "udp6", ...) cannot reach.
func keepFamily(network string, ips []netip.Addr) []netip.Addr {
	want4, want6 := strings.HasSuffix(network, "4"), strings.HasSuffix(network, "6")
	if !want4 && !want6 {
		return ips
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip.Unmap().Is4() == want4 {
			out = append(out, ip)
		}
	}
	return out
}

// dialEach tries the addresses in order and returns the first connection, or the
// first error when none connects.
func dialEach(ctx context.Context, base DialFunc, network, port string, ips []netip.Addr) (
	net.Conn, error) {
	var first error
	for i, ip := range ips {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		attemptCtx, cancel := attemptContext(ctx, len(ips)-i)
		conn, err := base(attemptCtx, network, net.JoinHostPort(ip.Unmap().String(), port))
		cancel()
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// attemptContext gives one of left remaining attempts its share of ctx's deadline.
func attemptContext(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	share := max(time.Until(deadline)/time.Duration(left), minAttempt)
	return context.WithTimeout(ctx, share)
}
