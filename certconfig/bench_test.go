package certconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// benchConfig writes a config with n certificates (each in its own PEM files, as an
// operator with many tenants would keep them, all from one intermediate and
// verifying upstreams against one root) and n routes, and returns its path.
// Folders are kept per size for the whole run, since making 10,000 certificates is
// slow, and removed by TestMain.
var benchConfigs sync.Map

func benchConfig(b *testing.B, n int) string {
	if p, ok := benchConfigs.Load(n); ok {
		return p.(string)
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("mtlsproxy-bench-%d-", n))
	if err != nil {
		b.Fatal(err)
	}
	root := testpki.NewRoot("bench root")
	ca := root.Intermediate("bench intermediate")
	for name, data := range map[string][]byte{"inter.pem": ca.CertPEM(),
		"upstream-ca.pem": testpki.NewRoot("bench upstream root").CertPEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	var cfg strings.Builder
	for i := range n {
		c := ca.Client(testpki.Options{CommonName: fmt.Sprintf("tenant-%d", i)})
		name := fmt.Sprintf("t%05d", i)
		for ext, data := range map[string][]byte{".pem": c.CertPEM(), ".key": c.KeyPEM()} {
			if err := os.WriteFile(filepath.Join(dir, name+ext), data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		fmt.Fprintf(&cfg, "[[certificate]]\nname = %q\ncert_file = %q\nkey_file = %q\n"+
			"ca_file = \"inter.pem\"\nserver_ca_file = \"upstream-ca.pem\"\n\n",
			name, name+".pem", name+".key")
		fmt.Fprintf(&cfg, "[[route]]\nhost = \"%s.hooks.example\"\ncertificate = %q\n\n",
			name, name)
	}
	path := filepath.Join(dir, "mtlsproxy.toml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	benchConfigs.Store(n, path)
	return path
}

// BenchmarkLoadFile measures a full reload: reading, parsing and checking every
// certificate and key, and building the snapshot. It also reports the heap the
// loaded snapshot keeps alive.
func BenchmarkLoadFile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("certificates=%d", n), func(b *testing.B) {
			path := benchConfig(b, n)
			var snap *Snapshot
			b.ResetTimer()
			for b.Loop() {
				var err error
				if snap, err = LoadFile(path); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(retainedHeap(func() any {
				s, _ := LoadFile(path)
				return s
			}))/(1<<20), "MiB-retained")
			_ = snap
		})
	}
}

// BenchmarkReloadUnchanged is a reload of a file whose certificates did not change:
// every file is read and hashed, none is parsed again.
func BenchmarkReloadUnchanged(b *testing.B) {
	path := benchConfig(b, 10000)
	prev, err := LoadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		next, err := LoadFileWith(path, LoadOptions{Previous: prev})
		if err != nil {
			b.Fatal(err)
		}
		if next.Certificates[prev.Names[0]] != prev.Certificates[prev.Names[0]] {
			b.Fatal("an unchanged certificate was built again")
		}
	}
}

// retainedHeap is the live heap growth while the value made by mk is reachable.
func retainedHeap(mk func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := mk()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}

// BenchmarkRoute measures route selection with many routes: the last route matches,
// so every route is tried.
func BenchmarkRoute(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			s := &Snapshot{}
			for i := range n {
				r, err := CompileRoute(RouteConfig{Host: fmt.Sprintf("*.t%d.example", i),
					Certificate: "x"})
				if err != nil {
					b.Fatal(err)
				}
				s.Routes = append(s.Routes, r)
			}
			s.routes = indexRoutes(s.Routes)
			host := fmt.Sprintf("hooks.t%d.example", n-1)
			b.ReportAllocs()
			for b.Loop() {
				if s.Route(host, 443) == nil {
					b.Fatal("no route")
				}
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	benchConfigs.Range(func(_, p any) bool {
		os.RemoveAll(filepath.Dir(p.(string)))
		return true
	})
	os.Exit(code)
}
