package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// startTimeout bounds how long a server may take to start accepting connections.
const startTimeout = 15 * time.Second

// tools are the absolute paths of the outside programs the suite drives.
type tools struct {
	nginx, haproxy, curl string
}

// findTools locates nginx, haproxy and curl, also in the sbin folders that are often
// missing from PATH. When one is missing the test is skipped, except under CI=true,
// where a missing program means the machine was not prepared and the test fails.
func findTools(t *testing.T) tools {
	t.Helper()
	tl := tools{nginx: lookTool("nginx"), haproxy: lookTool("haproxy"), curl: lookTool("curl")}
	var missing []string
	for name, path := range map[string]string{
		"nginx": tl.nginx, "haproxy": tl.haproxy, "curl": tl.curl,
	} {
		if path == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return tl
	}
	msg := fmt.Sprintf("end-to-end suite needs %s (apt-get install nginx haproxy curl)",
		strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return tl
}

func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// buildProxy compiles cmd/mtlsproxy into dir.
func buildProxy(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "mtlsproxy")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/mtlsproxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mtlsproxy: %v\n%s", err, out)
	}
	return bin
}

// pki is every certificate of the suite, written to files in dir.
type pki struct {
	dir                          string
	clientRoot, clientMiddle     *testpki.Cert
	acme, globex, retired, rogue *testpki.Cert
	rogueRoot                    *testpki.Cert
	serverRoot, server           *testpki.Cert
}

// serverName is the name on the upstream servers' certificate; requests go to
// 127.0.0.1, so the proxy must send it as SNI and verify against it.
const serverName = "upstream.e2e.test"

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	p := &pki{dir: dir}
	p.clientRoot = testpki.NewRoot("e2e client root")
	p.clientMiddle = p.clientRoot.Intermediate("e2e client intermediate")
	p.acme = p.clientMiddle.Client(testpki.Options{CommonName: "e2e acme"})
	p.globex = p.clientMiddle.Client(testpki.Options{CommonName: "e2e globex", Key: testpki.RSA})
	p.retired = p.clientMiddle.Client(testpki.Options{CommonName: "e2e retired"})
	p.rogueRoot = testpki.NewRoot("e2e rogue root")
	p.rogue = p.rogueRoot.Client(testpki.Options{CommonName: "e2e rogue"})
	p.serverRoot = testpki.NewRoot("e2e server root")
	p.server = p.serverRoot.Server(testpki.Options{DNSNames: []string{serverName}})

	write := func(name string, data ...[]byte) {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Join(data, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("client-root.pem", p.clientRoot.CertPEM())
	write("client-intermediate.pem", p.clientMiddle.CertPEM())
	write("rogue-root.pem", p.rogueRoot.CertPEM())
	write("server-root.pem", p.serverRoot.CertPEM())
	write("server.pem", p.server.ChainPEM())
	write("server.key", p.server.KeyPEM())
	write("server-combined.pem", p.server.ChainPEM(), p.server.KeyPEM())
	for name, c := range map[string]*testpki.Cert{
		"acme": p.acme, "globex": p.globex, "retired": p.retired, "rogue": p.rogue,
	} {
		write(name+".pem", c.CertPEM())
		write(name+".key", c.KeyPEM())
	}
	return p
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is a started server with its output kept in a file for diagnostics.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startProcess runs argv with stdout and stderr in dir/name.log, and stops it with
// SIGTERM (then SIGKILL) when the test ends.
func startProcess(t *testing.T, dir, name string, argv ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, f, f
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.output())
		}
	})
	return p
}

// stop sends SIGTERM and waits up to five seconds, then kills. It returns the
// process's exit error (nil for a clean exit).
func (p *process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // keep it for a later call
		return err
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("%s ignored SIGTERM for 5s and was killed: %w", p.name, err)
	}
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitPort waits until addr accepts TCP connections.
func (p *process) waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited before listening: %v\n%s", p.name, err, p.output())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s is not listening on %s after %v\n%s", p.name, addr, startTimeout, p.output())
}

// cleanEnv is the environment without proxy settings, so that neither curl nor the
// servers send anything anywhere but where the test says.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(name), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startNginx runs nginx in the foreground, single-process, with everything it
// writes kept in dir. It requires a client certificate chaining to the client root.
func startNginx(t *testing.T, nginx string, p *pki) string {
	t.Helper()
	dir := filepath.Join(p.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := fmt.Sprintf(nginxConf, dir, addr, p.path("server.pem"), p.path("server.key"),
		p.path("client-root.pem"))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, dir, "nginx", nginx, "-c", confPath, "-p", dir+"/",
		"-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	proc.waitPort(t, addr)
	return addr
}

// nginxConf: %[1]s folder, %[2]s listen address, %[3]s/%[4]s server certificate
// and key, %[5]s client CA. It answers with the client certificate's subject, the
// server name asked for and the routing header; it answers 400 itself when no
// certificate or an untrusted one is sent.
const nginxConf = `
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen %[2]s ssl;
        ssl_certificate %[3]s;
        ssl_certificate_key %[4]s;
        ssl_client_certificate %[5]s;
        ssl_verify_client on;
        ssl_verify_depth 3;
        default_type text/plain;
        location / {
            return 200 "subject=$ssl_client_s_dn sni=$ssl_server_name header=$http_x_mtls_client_cert\n";
        }
    }
}
`

// haproxyAddrs are HAProxy's two listeners: one offering TLS 1.3, one capped at
// TLS 1.2, where a refused certificate fails the handshake itself.
type haproxyAddrs struct {
	tls13, tls12 string
}

// startHAProxy runs HAProxy in the foreground. It aborts the handshake of a client
// without a trusted certificate.
func startHAProxy(t *testing.T, haproxy string, p *pki) haproxyAddrs {
	t.Helper()
	dir := filepath.Join(p.dir, "haproxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	addrs := haproxyAddrs{
		tls13: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		tls12: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	conf := fmt.Sprintf(haproxyConf, addrs.tls13, addrs.tls12,
		p.path("server-combined.pem"), p.path("client-root.pem"), haproxyAnswer)
	confPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, dir, "haproxy", haproxy, "-f", confPath, "-db")
	proc.waitPort(t, addrs.tls13)
	proc.waitPort(t, addrs.tls12)
	return addrs
}

// haproxyConf: %[1]s and %[2]s listen addresses (TLS 1.3, TLS 1.2 only), %[3]s
// certificate and key, %[4]s client CA, %[5]s the answer.
const haproxyConf = `
global
    maxconn 64
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend tls13
    bind %[1]s ssl crt %[3]s ca-file %[4]s verify required
    %[5]s
frontend tls12
    bind %[2]s ssl crt %[3]s ca-file %[4]s verify required ssl-max-ver TLSv1.2
    %[5]s
`

// haproxyAnswer makes HAProxy answer by itself with the client certificate's
// subject, the server name asked for and the routing header, if it arrived.
const haproxyAnswer = `http-request return status 200 content-type text/plain ` +
	`lf-string "subject=%[ssl_c_s_dn] sni=%[ssl_fc_sni] header=%[req.hdr(x-mtls-client-cert)]"`

// startProxy runs "mtlsproxy serve" with the given configuration on a free port and
// returns the process and the address it listens on, read from its JSON log.
func startProxy(t *testing.T, bin, dir, config string) (*process, string) {
	t.Helper()
	cfg := filepath.Join(dir, "mtlsproxy.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, dir, "mtlsproxy", bin, "serve", "-config", cfg,
		"-listen", "127.0.0.1:0")
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if addr := listeningAddr(proc.output()); addr != "" {
			return proc, addr
		}
		select {
		case err := <-proc.done:
			proc.done <- err
			t.Fatalf("mtlsproxy exited at start: %v\n%s", err, proc.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("mtlsproxy logged no listening address in %v\n%s", startTimeout, proc.output())
	return nil, ""
}

// listeningAddr finds the "listening" line of the JSON log and returns its addr.
func listeningAddr(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			return line.Addr
		}
	}
	return ""
}

// result is what curl got back.
type result struct {
	status  int
	headers string // raw header block, as curl -D writes it
	body    string
}

// header returns the first value of the named response header.
func (r result) header(name string) string {
	for _, line := range strings.Split(r.headers, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// curl sends GET url through the proxy with extra headers ("Name: value").
func curl(t *testing.T, curlPath, proxyAddr, url string, headers ...string) result {
	t.Helper()
	dir := t.TempDir()
	hdrFile, bodyFile := filepath.Join(dir, "headers"), filepath.Join(dir, "body")
	args := []string{"-sS", "--max-time", "20", "-x", "http://" + proxyAddr,
		"-D", hdrFile, "-o", bodyFile, "-w", "%{http_code}"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	cmd := exec.Command(curlPath, args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run curl: %v", err)
		}
		t.Fatalf("curl %s failed: %v\n%s", url, err, &stderr)
	}
	var res result
	if _, err := fmt.Sscan(string(out), &res.status); err != nil {
		t.Fatalf("curl printed %q, not a status code", out)
	}
	h, _ := os.ReadFile(hdrFile)
	b, _ := os.ReadFile(bodyFile)
	res.headers, res.body = string(h), string(b)
	return res
}
