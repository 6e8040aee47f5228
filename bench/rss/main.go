// Command rss measures the resident memory of the real mtlsproxy binary with many
// certificates loaded, next to the same binary with one certificate, and how long
// its reloads take. It is part of `make bench`.
//
// It writes N client certificates (ECDSA P-256, each in its own cert and key file,
// sharing one intermediate in ca_file and one upstream CA) and a route for each,
// starts `mtlsproxy serve` on loopback, and reads VmRSS from /proc after the start,
// after a reload with nothing changed (SIGHUP), after reloads where the shared
// chain file changed, so that every certificate is parsed again, and at its highest
// while keep-alive requests flow through it to an mTLS upstream on loopback.
//
//	go run ./bench/rss -bin path/to/mtlsproxy [-n 10000] [-out bench/rss.md]
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// settle is how long to wait after a snapshot is in force before reading the RSS:
// serve returns freed memory to the system a second after a new snapshot.
const settle = 2500 * time.Millisecond

func main() {
	bin := flag.String("bin", "", "the mtlsproxy binary to measure (required)")
	n := flag.Int("n", 10000, "number of certificates")
	rebuilds := flag.Int("rebuilds", 3, "reloads that parse every certificate again")
	out := flag.String("out", "", "also write the Markdown table to this file")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "rss: -bin is required")
		os.Exit(2)
	}
	path, err := filepath.Abs(*bin) // the binary runs in its own folder
	if err == nil {
		err = run(path, *n, *rebuilds, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(1)
	}
}

type row struct {
	what   string
	rssKB  int
	reload time.Duration // 0 when the row is not a reload
}

func run(bin string, n, rebuilds int, out string) error {
	dir, err := os.MkdirTemp("", "mtlsproxy-rss")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var rows []row
	one, err := measure(bin, dir, "one", 1, 0)
	if err != nil {
		return err
	}
	rows = append(rows, one...)
	many, err := measure(bin, dir, "many", n, rebuilds)
	if err != nil {
		return err
	}
	rows = append(rows, many...)

	var b strings.Builder
	fmt.Fprintf(&b, "| mtlsproxy serve, %d certificates | RSS MB | reload ms |\n", n)
	b.WriteString("| --- | ---: | ---: |\n")
	for _, r := range rows {
		ms := "-"
		if r.reload > 0 {
			ms = strconv.FormatInt(r.reload.Milliseconds(), 10)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s |\n", r.what, float64(r.rssKB)/1024, ms)
	}
	fmt.Print(b.String())
	if out != "" {
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// measure writes a configuration with n certificates into dir/name, runs the
// binary on it and returns the rows measured.
func measure(bin, dir, name string, n, rebuilds int) ([]row, error) {
	d := filepath.Join(dir, name)
	root := testpki.NewRoot("rss root")
	inter := root.Intermediate("rss intermediate")
	up := startUpstream(root)
	defer up.Close()
	target := up.Listener.Addr().String()
	config, chain, listen, err := writeConfig(d, n, root, inter, target)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "-config", config)
	cmd.Dir = d
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	logs := make(chan logLine, 16)
	go readLogs(stderr, logs)

	start, err := waitFor(logs, "configuration loaded", 2*time.Minute)
	if err != nil {
		return nil, err
	}
	if _, err := waitFor(logs, "listening", time.Minute); err != nil {
		return nil, err
	}
	rss, err := settled(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	if n == 1 {
		return []row{{what: "one certificate, after start (baseline)", rssKB: rss},
			loadRow("one certificate, ", listen, target, cmd.Process.Pid)}, nil
	}
	rows := []row{{fmt.Sprintf("after start (%d)", n), rss, start.took()}}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return nil, err
	}
	same, err := reloaded(logs, cmd.Process.Pid, "reload, nothing changed")
	if err != nil {
		return nil, err
	}
	rows = append(rows, same)

	for i := range rebuilds {
		// The shared chain file changes: every certificate is parsed again.
		f, err := os.OpenFile(chain, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString("\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		full, err := reloaded(logs, cmd.Process.Pid,
			fmt.Sprintf("reload %d, every certificate parsed again", i+1))
		if err != nil {
			return nil, err
		}
		rows = append(rows, full)
	}

	return append(rows, loadRow("", listen, target, cmd.Process.Pid)), nil
}

// loadRow runs the load and describes it; a failed load is reported in the row.
func loadRow(prefix, listen, target string, pid int) row {
	peak, requests, err := load(listen, target, loadConns, loadTime, pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		return row{what: prefix + "under load: failed, see above"}
	}
	return row{what: fmt.Sprintf("%speak under keep-alive load (%d connections, %s, "+
		"%d requests)", prefix, loadConns, loadTime, requests), rssKB: peak}
}

// The load that shows what the heap grows to while requests flow.
const (
	loadConns    = 32
	loadTime     = 5 * time.Second
	loadRequests = 1_000_000 // a bound on the count as well as the time
)

// startUpstream starts a TLS server on loopback that requires a client certificate
// issued under root, with a server certificate from root for 127.0.0.1.
func startUpstream(root *testpki.Cert) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}))
	server := root.Server(testpki.Options{CommonName: "rss upstream",
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{server.TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    root.Pool(),
	}
	srv.StartTLS()
	return srv
}

// load sends keep-alive GETs to target through the proxy at proxyAddr from conns
// clients for d (or until loadRequests), sampling the proxy's RSS, and returns the
// highest sample and the number of requests answered.
func load(proxyAddr, target string, conns int, d time.Duration, pid int) (int, int64, error) {
	tr := &http.Transport{
		Proxy:               http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}),
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		done     atomic.Int64
		failure  atomic.Pointer[error]
		stop     = time.Now().Add(d)
		wg       sync.WaitGroup
		finished = make(chan struct{})
	)
	for range conns {
		wg.Go(func() {
			for time.Now().Before(stop) && done.Load() < loadRequests && failure.Load() == nil {
				if err := get(client, "http://"+target+"/"); err != nil {
					failure.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		})
	}
	go func() { wg.Wait(); close(finished) }()
	peak := 0
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if rss, err := rssOf(pid); err == nil {
				peak = max(peak, rss)
			}
		case <-finished:
			if err := failure.Load(); err != nil {
				return 0, 0, fmt.Errorf("load through the proxy: %w", *err)
			}
			return peak, done.Load(), nil
		}
	}
}

func get(client *http.Client, u string) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s (%s)", u, resp.Status, resp.Header.Get("X-Mtls-Proxy-Error"))
	}
	return nil
}

// reloaded waits for the next load to be in force and settled and returns its row.
func reloaded(logs <-chan logLine, pid int, what string) (row, error) {
	l, err := waitFor(logs, "configuration loaded", time.Minute)
	if err != nil {
		return row{}, err
	}
	rss, err := settled(pid)
	if err != nil {
		return row{}, err
	}
	return row{what, rss, l.took()}, nil
}

// writeConfig writes n certificates issued by inter with a route each, and a route
// that sends requests for target with the first of them. It returns the config
// path, the path of the chain file the certificates share and the proxy's address.
func writeConfig(dir string, n int, root, inter *testpki.Cert,
	target string) (config, chain, addr string, err error) {
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return "", "", "", err
	}
	chain = filepath.Join(dir, "chain.pem")
	files := map[string][]byte{chain: inter.CertPEM(), filepath.Join(dir, "server-ca.pem"): root.CertPEM()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", "", err
	}
	addr = ln.Addr().String()
	_ = ln.Close()
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", "", "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[proxy]\nlisten = %q\n\n[egress]\ndeny_private = false\n\n"+
		"[admin]\ndisabled = true\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n", addr)
	fmt.Fprintf(&b, "[[route]]\nhost = %q\nport = %s\ncertificate = \"t00000\"\ntls = true\n\n",
		host, port)
	year := time.Now().AddDate(1, 0, 0)
	for i := range n {
		name := fmt.Sprintf("t%05d", i)
		c := inter.Client(testpki.Options{CommonName: name + ".clients.example", NotAfter: year})
		files[filepath.Join(dir, "certs", name+".pem")] = c.CertPEM()
		files[filepath.Join(dir, "certs", name+".key")] = c.KeyPEM()
		fmt.Fprintf(&b, "[[certificate]]\nname = %q\ncert_file = \"certs/%s.pem\"\n"+
			"key_file = \"certs/%s.key\"\nca_file = \"chain.pem\"\n"+
			"server_ca_file = \"server-ca.pem\"\n\n", name, name, name)
		fmt.Fprintf(&b, "[[route]]\nhost = \"%s.hooks.example\"\ncertificate = %q\n\n",
			name, name)
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", "", "", err
		}
	}
	config = filepath.Join(dir, "mtlsproxy.toml")
	return config, chain, addr, os.WriteFile(config, []byte(b.String()), 0o600)
}

type logLine struct {
	Level      string  `json:"level"`
	Msg        string  `json:"msg"`
	DurationMS float64 `json:"duration_ms"`
}

func (l logLine) took() time.Duration {
	return time.Duration(l.DurationMS * float64(time.Millisecond))
}

func readLogs(r io.Reader, out chan<- logLine) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// Errors, and lines that are not JSON (a start that failed before logging
		// was set up), say why a wait below would time out.
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Level == "ERROR" {
			fmt.Fprintln(os.Stderr, "rss: mtlsproxy:", sc.Text())
			continue
		}
		if l.Msg == "configuration loaded" || l.Msg == "listening" {
			out <- l
		}
	}
}

func waitFor(logs <-chan logLine, msg string, limit time.Duration) (logLine, error) {
	timeout := time.After(limit)
	for {
		select {
		case l, ok := <-logs:
			if !ok {
				return logLine{}, fmt.Errorf("mtlsproxy exited while waiting for %q", msg)
			}
			if l.Msg == msg {
				return l, nil
			}
		case <-timeout:
			return logLine{}, fmt.Errorf("no %q from mtlsproxy within %s", msg, limit)
		}
	}
}

// settled waits for serve to settle its memory and returns the process's VmRSS.
func settled(pid int) (int, error) {
	time.Sleep(settle)
	return rssOf(pid)
}

// rssOf returns the VmRSS of a process, in kB.
func rssOf(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}
