package certconfig

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestRouteIndexAgreesWithScan checks the index against trying every route in
// order, over random mixes of exact, wildcard and IP routes with and without ports.
func TestRouteIndexAgreesWithScan(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	labels := []string{"a", "b", "hooks", "api", "example", "com", "0", "1"}
	name := func(min int) string {
		n := min + rng.IntN(3)
		s := labels[rng.IntN(len(labels))]
		for range n {
			s += "." + labels[rng.IntN(len(labels))]
		}
		return s
	}
	ports := []int{0, 0, 443, 8443}
	for round := range 200 {
		var routes []*Route
		for range 1 + rng.IntN(30) {
			var host string
			switch rng.IntN(4) {
			case 0:
				host = "*." + name(0)
			case 1:
				host = fmt.Sprintf("10.0.0.%d", rng.IntN(3))
			case 2:
				host = "::ffff:10.0.0.1" // written mapped, matched unmapped
			default:
				host = name(0)
			}
			r, err := CompileRoute(RouteConfig{Host: host, Port: ports[rng.IntN(len(ports))]})
			if err != nil {
				t.Fatalf("route %q: %v", host, err)
			}
			routes = append(routes, r)
		}
		scan := &Snapshot{Routes: routes}
		indexed := &Snapshot{Routes: routes, routes: indexRoutes(routes)}
		for range 50 {
			host := name(0)
			if rng.IntN(4) == 0 {
				host = fmt.Sprintf("10.0.0.%d", rng.IntN(3))
			}
			port := []int{443, 8443, 80}[rng.IntN(3)]
			if got, want := indexed.Route(host, port), scan.Route(host, port); got != want {
				t.Fatalf("round %d: %s:%d matched %v by index, %v by scan", round, host, port,
					describe(got), describe(want))
			}
		}
	}
}

func describe(r *Route) string {
	if r == nil {
		return "nothing"
	}
	return fmt.Sprintf("%q port %d", r.Host, r.Port)
}

func TestLoadedSnapshotUsesTheIndex(t *testing.T) {
	t.Parallel()
	s, err := Load([]byte(`
[[route]]
host = "*.example.com"
port = 8443
tls = true

[[route]]
host = "hooks.example.com"
tls = true

[[route]]
host = "*.example.com"
tls = true
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.routes == nil {
		t.Fatal("the loaded snapshot has no route index")
	}
	for _, tc := range []struct {
		host string
		port int
		want int // position in s.Routes; -1 for none
	}{
		{"hooks.example.com", 8443, 0}, // the earlier wildcard wins over the exact name
		{"hooks.example.com", 443, 1},
		{"other.example.com", 443, 2},
		{"example.com", 443, -1}, // a wildcard never matches the bare suffix
		{"a.b.example.com", 8443, 0},
	} {
		got := s.Route(tc.host, tc.port)
		if (tc.want < 0 && got != nil) || (tc.want >= 0 && got != s.Routes[tc.want]) {
			t.Errorf("%s:%d matched %s, want position %d", tc.host, tc.port, describe(got),
				tc.want)
		}
	}
}
