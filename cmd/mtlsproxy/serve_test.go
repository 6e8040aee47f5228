package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testlog"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// syncBuffer collects a logger's output for a test to read.
type syncBuffer = testlog.Buffer

// writeConfig writes config.toml into dir, with a certificate "acme" whose files
// are already there, and returns its path.
func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	body := `
[proxy]
listen = "127.0.0.1:0"
shutdown_grace = "5s"

[egress]
allow_cidrs = ["127.0.0.0/8"]

[admin]
disabled = true

[log]
format = "json"

[[certificate]]
name = "acme"
cert_file = "acme.pem"
key_file = "acme.key"
` + extra
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newConfigDir makes a folder with acme.pem and acme.key.
func newConfigDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	c := testpki.NewRoot("serve test root").Client(testpki.Options{CommonName: "acme"})
	for name, data := range map[string][]byte{"acme.pem": c.CertPEM(), "acme.key": c.KeyPEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReloadKeepsLastGoodSnapshot(t *testing.T) {
	t.Parallel()
	dir := newConfigDir(t)
	path := writeConfig(t, dir, "")
	cfg, err := readBootConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log, level := newLogger(&logs, certconfig.LogConfig{Format: "json", Level: "info"})
	d, err := newDaemon(path, cfg, log, level)
	if err != nil {
		t.Fatalf("first load: %v", err)
	}
	snap := d.cur.Load()

	// A broken file: the snapshot in force stays, the failure is recorded.
	writeConfig(t, dir, "[[certificate]]\nname = \"broken\"\ncert_file = \"missing.pem\"\n")
	if err := d.reload("test"); err == nil {
		t.Fatal("reload of a config naming a missing file succeeded")
	}
	if d.cur.Load() != snap {
		t.Error("a failed reload replaced the snapshot in force")
	}
	if st := d.cur.Status(); st.Success || !strings.Contains(st.Err, "broken") {
		t.Errorf("status after a failed reload = %+v, want a failure naming \"broken\"", st)
	}
	if !strings.Contains(logs.String(), `"msg":"configuration rejected; keeping the last good one"`) {
		t.Errorf("failed reload not logged:\n%s", logs.String())
	}

	// A good file with a new level: it is swapped in and the level applies.
	writeConfig(t, dir, "[[route]]\nhost = \"a.example\"\ncertificate = \"acme\"\n")
	replaceLogLevel(t, filepath.Join(dir, "config.toml"), "debug")
	if err := d.reload("test"); err != nil {
		t.Fatalf("reload of a valid config: %v", err)
	}
	if got := d.cur.Load(); got == snap || len(got.Routes) != 1 {
		t.Errorf("snapshot after reload has %d routes, want the new one with 1", len(got.Routes))
	}
	if st := d.cur.Status(); !st.Success || st.Err != "" || st.LastSuccess.IsZero() {
		t.Errorf("status after a good reload = %+v", st)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level after reload = %v, want debug", level.Level())
	}
}

func replaceLogLevel(t *testing.T, path, level string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(b), "[log]\n", fmt.Sprintf("[log]\nlevel = %q\n", level), 1)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

// running is a serve call in progress.
type running struct {
	addr string
	sigs chan os.Signal
	code chan int
	logs *syncBuffer
}

func startServe(t *testing.T, path string) *running {
	t.Helper()
	r := &running{sigs: make(chan os.Signal, 4), code: make(chan int, 1), logs: &syncBuffer{}}
	ready := make(chan net.Addr, 1)
	o := serveOptions{configPath: path, stderr: r.logs, signals: r.sigs,
		ready: func(a net.Addr) { ready <- a }}
	go func() { r.code <- serve(o) }()
	select {
	case a := <-ready:
		r.addr = a.String()
	case code := <-r.code:
		t.Fatalf("serve exited with %d at start:\n%s", code, r.logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not start:\n%s", r.logs.String())
	}
	return r
}

// wait returns serve's exit status, failing the test if it takes over limit.
func (r *running) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case code := <-r.code:
		return code
	case <-time.After(limit):
		t.Fatalf("serve still running after %v:\n%s", limit, r.logs.String())
		return -1
	}
}

// slowUpstream answers after release is closed, and reports each request start.
func slowUpstream(t *testing.T) (srv *httptest.Server, started chan struct{},
	release chan struct{}) {
	t.Helper()
	started, release = make(chan struct{}, 4), make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		srv.Close()
	})
	return srv, started, release
}

// proxiedGet sends GET target through the proxy at proxyAddr in the background.
func proxiedGet(proxyAddr, target string) <-chan error {
	done := make(chan error, 1)
	go func() {
		pu := &url.URL{Scheme: "http", Host: proxyAddr}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)},
			Timeout: 20 * time.Second}
		resp, err := c.Get(target)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != 200 || string(body) != "finished") {
			err = fmt.Errorf("status %d body %q", resp.StatusCode, body)
		}
		done <- err
	}()
	return done
}

func TestServeDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	upstream, started, release := slowUpstream(t)
	r := startServe(t, writeConfig(t, newConfigDir(t), ""))

	r.sigs <- syscall.SIGHUP // a reload must not disturb anything
	done := proxiedGet(r.addr, upstream.URL+"/slow")
	<-started
	r.sigs <- syscall.SIGTERM

	// The listener closes while the request is still in flight.
	waitRefused(t, r.addr)
	close(release)
	if err := <-done; err != nil {
		t.Errorf("in-flight request during shutdown: %v", err)
	}
	if code := r.wait(t, 10*time.Second); code != exitOK {
		t.Errorf("exit status %d, want %d\n%s", code, exitOK, r.logs.String())
	}
	for _, msg := range []string{`"msg":"configuration loaded","reason":"SIGHUP"`,
		`"msg":"shutting down; draining in-flight requests"`, `"msg":"stopped"`} {
		if !strings.Contains(r.logs.String(), msg) {
			t.Errorf("log lacks %s:\n%s", msg, r.logs.String())
		}
	}
}

func TestServeSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	upstream, started, _ := slowUpstream(t)
	dir := newConfigDir(t)
	path := writeConfig(t, dir, "")
	b, _ := os.ReadFile(path)
	long := strings.Replace(string(b), `shutdown_grace = "5s"`, `shutdown_grace = "1m"`, 1)
	if err := os.WriteFile(path, []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServe(t, path)

	done := proxiedGet(r.addr, upstream.URL+"/stuck")
	<-started
	r.sigs <- syscall.SIGTERM
	waitRefused(t, r.addr)
	r.sigs <- syscall.SIGINT
	if code := r.wait(t, 5*time.Second); code != exitError {
		t.Errorf("exit status %d after a second signal, want %d", code, exitError)
	}
	select {
	case err := <-done:
		t.Errorf("the stuck request ended (%v) before the upstream answered", err)
	default:
	}
}

func TestServeListenFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logs syncBuffer
	o := serveOptions{configPath: writeConfig(t, newConfigDir(t), ""), listen: ln.Addr().String(),
		stderr: &logs, signals: make(chan os.Signal)}
	if code := serve(o); code != exitError {
		t.Errorf("serve on a taken port returned %d, want %d", code, exitError)
	}
	if !strings.Contains(logs.String(), "cannot listen") {
		t.Errorf("log does not say why:\n%s", logs.String())
	}
}

// waitRefused waits until nothing accepts connections on addr any more.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) {
				return
			}
		} else {
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections after the stop signal", addr)
}

func TestServeLogsStartOnce(t *testing.T) {
	t.Parallel()
	dir := newConfigDir(t)
	soon := testpki.NewRoot("soon root").Client(testpki.Options{CommonName: "acme",
		NotAfter: time.Now().Add(5 * 24 * time.Hour)})
	writeTestFile(t, filepath.Join(dir, "acme.pem"), testFile{data: string(soon.CertPEM())})
	writeTestFile(t, filepath.Join(dir, "acme.key"), testFile{data: string(soon.KeyPEM())})
	r := startServe(t, writeConfig(t, dir, ""))
	r.sigs <- syscall.SIGTERM
	if code := r.wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit status %d, want %d", code, exitOK)
	}

	counts := map[string]int{}
	for line := range strings.Lines(r.logs.String()) {
		var rec struct{ Msg, Certificate, Warning string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		counts[rec.Msg+" "+rec.Certificate+" "+rec.Warning]++
	}
	warnings := 0
	for key, n := range counts {
		if strings.HasPrefix(key, "certificate warning acme ") {
			warnings++
		}
		if n != 1 && !strings.HasPrefix(key, "request") {
			t.Errorf("%d lines of %q, want 1", n, key)
		}
	}
	for _, key := range []string{"configuration loaded  ", "certificate loaded acme "} {
		if counts[key] != 1 {
			t.Errorf("%d lines of %q, want 1:\n%s", counts[key], key, r.logs.String())
		}
	}
	if warnings == 0 {
		t.Errorf("no warning about a certificate expiring in 5 days:\n%s", r.logs.String())
	}
}

func TestServeFirstLoadFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() // no acme.pem: the config names a missing file
	var logs syncBuffer
	o := serveOptions{configPath: writeConfig(t, dir, ""), stderr: &logs,
		signals: make(chan os.Signal)}
	if code := serve(o); code != exitError {
		t.Errorf("exit status %d, want %d", code, exitError)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"configuration rejected","reason":"start"`) ||
		strings.Contains(out, "keeping the last good one") {
		t.Errorf("first failed load logged as if a configuration were kept:\n%s", out)
	}
	if !strings.Contains(out, "mtlsproxy serve: "+o.configPath+": ") {
		t.Errorf("no message on stderr:\n%s", out)
	}
}

// TestServeGraceOverCutsRequests: a request still running when the grace period
// ends is closed by the proxy and logged as shutdown_cut, not as a client that
// went away.
func TestServeGraceOverCutsRequests(t *testing.T) {
	t.Parallel()
	upstream, started, _ := slowUpstream(t)
	dir := newConfigDir(t)
	path := writeConfig(t, dir, "")
	b, _ := os.ReadFile(path)
	short := strings.Replace(string(b), `shutdown_grace = "5s"`, `shutdown_grace = "300ms"`, 1)
	if err := os.WriteFile(path, []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServe(t, path)
	done := proxiedGet(r.addr, upstream.URL+"/stuck")
	<-started
	r.sigs <- syscall.SIGTERM
	if code := r.wait(t, 10*time.Second); code != exitOK {
		t.Errorf("exit status %d, want %d", code, exitOK)
	}
	if err := <-done; err == nil {
		t.Error("the stuck request succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs.String(), `"error_code":"shutdown_cut"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown_cut in the log:\n%s", r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
