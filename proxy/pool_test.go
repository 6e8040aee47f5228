package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// connTracker counts the connections an upstream has seen closed.
type connTracker struct {
	mu     sync.Mutex
	closed int
}

func (c *connTracker) hook(_ net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		c.mu.Lock()
		c.closed++
		c.mu.Unlock()
	}
}

func (c *connTracker) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// TestSwapPrunesPool replaces and disables a certificate in turn: after each Swap
// the idle connection that carried the old identity is closed, and the next
// request presents what the new snapshot says.
func TestSwapPrunesPool(t *testing.T) {
	t.Parallel()
	f := fixture()
	v1 := newCert("acme", f.clientInter.Client(testpki.Options{CommonName: "acme v1"}),
		[]*testpki.Cert{f.clientInter})
	v2 := newCert("acme", f.clientInter.Client(testpki.Options{CommonName: "acme v2"}),
		[]*testpki.Cert{f.clientInter})
	off := *v2
	off.Enabled = false
	cases := []struct {
		name   string
		next   *certconfig.Certificate
		wantCN string
	}{
		{"replaced", v2, "acme v2"},
		{"disabled", &off, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var conns connTracker
			up := upstream{clientAuth: tls.VerifyClientCertIfGiven, connState: conns.hook}.start(t)
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{v1}))

			resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, "acme")
			if e := decodeEcho(t, resp, body); e.ClientCN != "acme v1" {
				t.Fatalf("first request presented %q", e.ClientCN)
			}
			if n := conns.count(); n != 0 {
				t.Fatalf("%d upstream connections closed before the swap", n)
			}

			h.cur.Swap(newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{tc.next}))
			waitFor(t, "the old identity's idle connection to close", func() bool {
				return conns.count() == 1
			})
			resp, body = h.get(t, httpURL(up.URL), DefaultCertHeader, "acme")
			e := decodeEcho(t, resp, body)
			if e.ClientCN != tc.wantCN || e.Resumed {
				t.Errorf("after the swap the server saw %q (resumed %v), want %q",
					e.ClientCN, e.Resumed, tc.wantCN)
			}
		})
	}
}

// TestIdentitiesNeverShare sends requests for two certificates to one upstream,
// dropping idle connections halfway so that TLS sessions get resumed: each
// request must arrive with its own certificate, on connections of its own.
func TestIdentitiesNeverShare(t *testing.T) {
	t.Parallel()
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			up := upstream{maxVersion: ver.v}.start(t)
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("a"), clientCert("b")}))

			addrs := map[string]string{} // upstream-side remote address -> certificate
			resumed := 0
			for round := range 3 {
				for _, name := range []string{"a", "b", "a", "b"} {
					resp, body := h.get(t, httpURL(up.URL), DefaultCertHeader, name)
					e := decodeEcho(t, resp, body)
					if e.ClientCN != name {
						t.Fatalf("round %d: request for %q arrived with %q (resumed %v)",
							round, name, e.ClientCN, e.Resumed)
					}
					if prev, ok := addrs[e.RemoteAddr]; ok && prev != name {
						t.Fatalf("connection %s carried %q and %q", e.RemoteAddr, prev, name)
					}
					addrs[e.RemoteAddr] = name
					if e.Resumed {
						resumed++
					}
				}
				h.proxy.Close()
			}
			if resumed == 0 {
				t.Fatal("no session was resumed; the test proves nothing about session caches")
			}
		})
	}
}

// TestPoolKeys checks which transports are shared, kept and dropped.
func TestPoolKeys(t *testing.T) {
	t.Parallel()
	a, b := clientCert("a"), clientCert("b")
	cur := &certconfig.Current{}
	first := newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{a, b})
	cur.Swap(first)
	pl := newPool(cur, func(time.Duration) DialFunc { return nil })
	ta := pl.transport(first, identityFor(true, a, true))
	tb := pl.transport(first, identityFor(true, b, true))
	plain := pl.transport(first, identityFor(false, nil, false))
	if ta == tb || pl.transport(first, identityFor(true, a, true)) != ta {
		t.Fatal("one transport per certificate, reused for the same one")
	}
	if ta.TLSClientConfig.ClientSessionCache == tb.TLSClientConfig.ClientSessionCache {
		t.Fatal("two certificates share a session cache")
	}

	// b is deleted: its transport goes, a's and the plain one stay.
	second := newSnapshot(t, certconfig.ProxyConfig{}, []*certconfig.Certificate{a})
	cur.Swap(second)
	pl.prune(first, second)
	if _, ok := pl.transports[identityFor(true, b, true).key]; ok {
		t.Error("the deleted certificate's transport was kept")
	}
	if pl.transport(second, identityFor(true, a, true)) != ta ||
		pl.transport(second, identityFor(false, nil, false)) != plain {
		t.Error("transports of unchanged identities were rebuilt")
	}

	// A request still holding the first snapshot gets a one-shot transport.
	stale := pl.transport(first, identityFor(true, b, true))
	if !stale.DisableKeepAlives || stale.ForceAttemptHTTP2 || len(pl.transports) != 2 {
		t.Errorf("stale request got a pooled transport (keep-alive %v, pool %d)",
			!stale.DisableKeepAlives, len(pl.transports))
	}

	// New limits rebuild everything.
	third := newSnapshot(t, certconfig.ProxyConfig{MaxIdleConnsPerHost: 3},
		[]*certconfig.Certificate{a})
	cur.Swap(third)
	pl.prune(second, third)
	if got := pl.transport(third, identityFor(true, a, true)); got == ta ||
		got.MaxIdleConnsPerHost != 3 {
		t.Error("a change of limits did not rebuild the transport")
	}
}
