package certconfig

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// watchEnv is a config folder with one certificate "a", a Current fed by a Reloader,
// and a running Watcher.
type watchEnv struct {
	t    *testing.T
	dir  string
	ca   *testpki.Cert
	cur  *Current
	rel  *Reloader
	stop context.CancelFunc
}

const watchConfig = `
[[certificate]]
name = "a"
cert_file = "a.pem"
key_file = "a.key"
`

func newWatchEnv(t *testing.T, dir, configPath string) *watchEnv {
	t.Helper()
	e := &watchEnv{t: t, dir: dir, ca: testpki.NewRoot("watch root"), cur: &Current{}}
	e.rel = &Reloader{Path: configPath, Current: e.cur, Logger: slog.New(slog.DiscardHandler)}
	return e
}

func (e *watchEnv) start() {
	e.t.Helper()
	if _, err := e.rel.Reload("start"); err != nil {
		e.t.Fatalf("first load: %v", err)
	}
	w, err := NewWatcher(e.rel, 30*time.Millisecond)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	e.stop = cancel
	e.t.Cleanup(func() { cancel(); <-done })
}

func (e *watchEnv) client(serial int64) *testpki.Cert {
	return e.ca.Client(testpki.Options{CommonName: fmt.Sprintf("client %d", serial), Serial: serial})
}

func (e *watchEnv) serial() int64 {
	s := e.cur.Load()
	c, ok := s.Certificate("a")
	if !ok {
		return -1
	}
	return c.Leaf().SerialNumber.Int64()
}

// waitSerial waits up to 5s for certificate "a" to have the given serial.
func (e *watchEnv) waitSerial(want int64) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.serial() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("certificate a has serial %d, want %d (last reload: %+v)",
		e.serial(), want, e.cur.Status())
}

// stays checks that certificate "a" keeps serial want for a while (no reload applied).
func (e *watchEnv) stays(want int64) {
	e.t.Helper()
	time.Sleep(300 * time.Millisecond)
	if got := e.serial(); got != want {
		e.t.Fatalf("certificate a has serial %d, want it kept at %d", got, want)
	}
}

func put(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writePair(t *testing.T, dir string, c *testpki.Cert) {
	t.Helper()
	put(t, filepath.Join(dir, "a.pem"), c.CertPEM())
	put(t, filepath.Join(dir, "a.key"), c.KeyPEM())
}

// replaceByRename writes data to a temporary file in the same folder and renames it
// over path, as deployment tools do.
func replaceByRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	put(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func plainEnv(t *testing.T) *watchEnv {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mtlsproxy.toml")
	put(t, cfg, []byte(watchConfig))
	e := newWatchEnv(t, dir, cfg)
	writePair(t, dir, e.client(100))
	e.start()
	return e
}

func TestWatcherPicksUpEveryKindOfWrite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		write func(t *testing.T, dir string, c *testpki.Cert)
	}{
		{"in place", writePair},
		{"temporary file renamed over", func(t *testing.T, dir string, c *testpki.Cert) {
			replaceByRename(t, filepath.Join(dir, "a.pem"), c.CertPEM())
			replaceByRename(t, filepath.Join(dir, "a.key"), c.KeyPEM())
		}},
		{"editor saves by rename with a backup", func(t *testing.T, dir string, c *testpki.Cert) {
			for _, f := range []struct {
				name string
				data []byte
			}{{"a.pem", c.CertPEM()}, {"a.key", c.KeyPEM()}} {
				p := filepath.Join(dir, f.name)
				if err := os.Rename(p, p+"~"); err != nil {
					t.Fatal(err)
				}
				put(t, filepath.Join(dir, "."+f.name+".swp"), f.data)
				if err := os.Rename(filepath.Join(dir, "."+f.name+".swp"), p); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"delete then recreate", func(t *testing.T, dir string, c *testpki.Cert) {
			for _, f := range []string{"a.pem", "a.key"} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond)
			writePair(t, dir, c)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := plainEnv(t)
			for i := int64(1); i <= 3; i++ { // repeatedly, not only the first time
				tc.write(t, e.dir, e.client(100+i))
				e.waitSerial(100 + i)
			}
		})
	}
}

func TestWatcherSedInPlaceOnConfig(t *testing.T) {
	t.Parallel()
	sed, err := exec.LookPath("sed")
	if err != nil {
		t.Skip("sed not installed")
	}
	e := plainEnv(t)
	other := e.client(200)
	put(t, filepath.Join(e.dir, "b.pem"), other.CertPEM())
	put(t, filepath.Join(e.dir, "b.key"), other.KeyPEM())
	cmd := exec.Command(sed, "-i", "s/a\\.pem/b.pem/; s/a\\.key/b.key/",
		filepath.Join(e.dir, "mtlsproxy.toml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sed: %v: %s", err, out)
	}
	e.waitSerial(200)
	// The new files are watched too.
	next := e.client(201)
	put(t, filepath.Join(e.dir, "b.pem"), next.CertPEM())
	put(t, filepath.Join(e.dir, "b.key"), next.KeyPEM())
	e.waitSerial(201)
}

// TestWatcherKubernetesSecretSwap mimics the kubelet's atomic writer: the files the
// config names are links through "..data" to a timestamped folder; an update makes a
// new folder, re-points "..data" by renaming a new link over it, and removes the old.
func TestWatcherKubernetesSecretSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mount := filepath.Join(dir, "secret")
	if err := os.Mkdir(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mtlsproxy.toml")
	put(t, cfg, []byte(`
[[certificate]]
name = "a"
cert_file = "secret/tls.crt"
key_file = "secret/tls.key"
`))
	e := newWatchEnv(t, dir, cfg)
	old := k8sPublish(t, mount, "", 1, e.client(300))
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(mount, f)); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	if e.serial() != 300 {
		t.Fatalf("serial %d, want 300", e.serial())
	}
	for i := int64(1); i <= 4; i++ {
		old = k8sPublish(t, mount, old, int(i)+1, e.client(300+i))
		e.waitSerial(300 + i)
	}
}

// k8sPublish writes c into a new timestamped folder, points "..data" at it
// atomically, removes the previous folder and returns the new folder's name.
func k8sPublish(t *testing.T, mount, prev string, gen int, c *testpki.Cert) string {
	t.Helper()
	name := fmt.Sprintf("..2026_12_03_10_00_%02d.%d", gen, gen)
	folder := filepath.Join(mount, name)
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(folder, "tls.crt"), c.CertPEM())
	put(t, filepath.Join(folder, "tls.key"), c.KeyPEM())
	tmpLink := filepath.Join(mount, "..data_tmp")
	if err := os.Symlink(name, tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpLink, filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if prev != "" {
		if err := os.RemoveAll(filepath.Join(mount, prev)); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func TestWatcherSymlinkedConfigRetargeted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	versions := filepath.Join(dir, "versions")
	if err := os.Mkdir(versions, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mtlsproxy.toml")
	e := newWatchEnv(t, dir, link)
	for i, name := range []string{"a", "b"} {
		c := e.client(int64(400 + i))
		put(t, filepath.Join(dir, name+".pem"), c.CertPEM())
		put(t, filepath.Join(dir, name+".key"), c.KeyPEM())
		body := fmt.Sprintf("[[certificate]]\nname = \"a\"\ncert_file = \"%s.pem\"\n"+
			"key_file = \"%s.key\"\n", name, name)
		put(t, filepath.Join(versions, name+".toml"), []byte(body))
	}
	if err := os.Symlink(filepath.Join("versions", "a.toml"), link); err != nil {
		t.Fatal(err)
	}
	e.start()
	tmp := link + ".new"
	if err := os.Symlink(filepath.Join("versions", "b.toml"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	e.waitSerial(401)
	// Editing the new target in place is seen too.
	next := e.client(402)
	put(t, filepath.Join(dir, "b.pem"), next.CertPEM())
	put(t, filepath.Join(dir, "b.key"), next.KeyPEM())
	e.waitSerial(402)
}

func TestWatcherKeepsLastGoodSnapshot(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		break_ func(t *testing.T, e *watchEnv)
	}{
		{"invalid TOML", func(t *testing.T, e *watchEnv) {
			put(t, filepath.Join(e.dir, "mtlsproxy.toml"), []byte("[[certificate]\nname="))
		}},
		{"bad PEM", func(t *testing.T, e *watchEnv) {
			put(t, filepath.Join(e.dir, "a.pem"), []byte("not a certificate\n"))
		}},
		{"half-written certificate", func(t *testing.T, e *watchEnv) {
			pem := e.client(150).CertPEM()
			put(t, filepath.Join(e.dir, "a.pem"), pem[:len(pem)/2])
		}},
		{"key of another certificate", func(t *testing.T, e *watchEnv) {
			put(t, filepath.Join(e.dir, "a.key"), e.client(151).KeyPEM())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := plainEnv(t)
			tc.break_(t, e)
			waitStatus(t, e.cur, false)
			e.stays(100)
			put(t, filepath.Join(e.dir, "mtlsproxy.toml"), []byte(watchConfig))
			writePair(t, e.dir, e.client(160))
			e.waitSerial(160)
			if st := e.cur.Status(); !st.Success || st.LastSuccess.IsZero() {
				t.Fatalf("status after a good change: %+v", st)
			}
		})
	}
}

func waitStatus(t *testing.T, cur *Current, success bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := cur.Status(); st.Success == success && st.At.After(st.LastSuccess) == !success {
			if !success && st.Err == "" {
				t.Fatalf("failed reload recorded no error: %+v", st)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("reload status never became success=%v: %+v", success, cur.Status())
}

func TestWatcherCertificateBeforeKey(t *testing.T) {
	t.Parallel()
	e := plainEnv(t)
	next := e.client(500)
	put(t, filepath.Join(e.dir, "a.pem"), next.CertPEM())
	waitStatus(t, e.cur, false) // the pair does not match: the old one stays
	if got := e.serial(); got != 100 {
		t.Fatalf("new certificate served with the old key: serial %d", got)
	}
	put(t, filepath.Join(e.dir, "a.key"), next.KeyPEM())
	e.waitSerial(500)
	c, _ := e.cur.Load().Certificate("a")
	if !next.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.Leaf().PublicKey) {
		t.Fatal("served key does not belong to the new certificate")
	}
}

func TestWatcherSameKeyRenewal(t *testing.T) {
	t.Parallel()
	e := plainEnv(t)
	first, _ := e.cur.Load().Certificate("a")
	// Re-sign a certificate for the same key, as a renewal that keeps the key does.
	signer, ok := first.TLS.PrivateKey.(crypto.Signer)
	if !ok {
		t.Fatalf("key %T is not a signer", first.TLS.PrivateKey)
	}
	renewed := e.ca.Client(testpki.Options{CommonName: "renewed", Serial: 600, Signer: signer})
	put(t, filepath.Join(e.dir, "a.pem"), renewed.CertPEM())
	e.waitSerial(600)
	c, _ := e.cur.Load().Certificate("a")
	if c.ID == first.ID {
		t.Fatal("renewed certificate kept the old ID; pools would keep the old certificate")
	}
}

func TestWatcherServerCABundleChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mtlsproxy.toml")
	put(t, cfg, []byte(watchConfig+"server_ca_file = \"upstream-ca.pem\"\n"))
	e := newWatchEnv(t, dir, cfg)
	writePair(t, dir, e.client(700))
	first := testpki.NewRoot("upstream one")
	put(t, filepath.Join(dir, "upstream-ca.pem"), first.CertPEM())
	e.start()
	before, _ := e.cur.Load().Certificate("a")
	second := testpki.NewRoot("upstream two")
	replaceByRename(t, filepath.Join(dir, "upstream-ca.pem"), second.CertPEM())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, _ := e.cur.Load().Certificate("a")
		if c.ID != before.ID {
			if c.ServerCAs == nil || c.ServerCAs.Equal(before.ServerCAs) {
				t.Fatal("server CA pool did not change with the bundle")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("server CA bundle change was not picked up")
}

func TestWatcherSeesAuthFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mtlsproxy.toml")
	put(t, cfg, []byte("[proxy]\nauth_file = \"users.txt\"\n"+watchConfig))
	put(t, filepath.Join(dir, "users.txt"), []byte("alice:one\n"))
	e := newWatchEnv(t, dir, cfg)
	writePair(t, dir, e.client(800))
	e.start()
	before := e.cur.Status().Successes
	put(t, filepath.Join(dir, "users.txt"), []byte("alice:two\n"))
	deadline := time.Now().Add(5 * time.Second)
	for e.cur.Status().Successes == before {
		if time.Now().After(deadline) {
			t.Fatal("a change of auth_file did not reload")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatcherPermissionChangeShowsItsWarning(t *testing.T) {
	t.Parallel()
	e := plainEnv(t)
	key := filepath.Join(e.dir, "a.key")
	readable := func() bool {
		c, _ := e.cur.Load().Certificate("a")
		return slices.ContainsFunc(c.Warnings, func(w string) bool {
			return strings.Contains(w, "readable by group or others")
		})
	}
	if readable() {
		t.Fatal("warning before the change")
	}
	for _, step := range []struct {
		mode os.FileMode
		want bool
	}{{0o644, true}, {0o600, false}} {
		if err := os.Chmod(key, step.mode); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for readable() != step.want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if readable() != step.want {
			t.Fatalf("after chmod %o the key warning is %v, want %v", step.mode, !step.want,
				step.want)
		}
	}
}
