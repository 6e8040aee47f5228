package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// adminConfig is a proxy with the admin API on adminAddr, a route for 127.0.0.1 to
// "dyn" (a certificate only the admin API defines) and one file certificate, acme.
func adminConfig(adminAddr string) string {
	return fmt.Sprintf(`
[proxy]
shutdown_grace = "3s"

[egress]
allow_cidrs = ["127.0.0.0/8"]

[admin]
listen = %q
token_file = "admin.token"
state_dir = "state"

[log]
format = "json"
level = "debug"

[[certificate]]
name = "acme"
cert_file = "acme.pem"
key_file = "acme.key"
ca_file = "client-intermediate.pem"
server_name = %q
server_ca_file = "server-root.pem"
`, adminAddr, serverName)
}

// cli runs "mtlsproxy certs ARGS" against the admin API and returns its output.
func cli(t *testing.T, bin, dir, adminAddr string, args ...string) string {
	t.Helper()
	argv := append([]string{"certs", "-admin", "http://" + adminAddr,
		"-token-file", filepath.Join(dir, "admin.token")}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mtlsproxy %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// TestAdminLifecycle drives the real binary: certificates added, disabled,
// replaced and deleted through the command-line client take effect on the next
// request to a real HAProxy, survive a restart of the process, and are not undone
// by a reload of the config file.
func TestAdminLifecycle(t *testing.T) {
	tl := findTools(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir)
	p := newPKI(t, dir)
	hap := "http://" + startHAProxy(t, tl.haproxy, p).tls13 + "/hook"
	if err := os.WriteFile(filepath.Join(dir, "admin.token"),
		[]byte("e2e-admin-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dyn := p.clientMiddle.Client(testpki.Options{CommonName: "e2e dyn one"})
	dyn2 := p.clientMiddle.Client(testpki.Options{CommonName: "e2e dyn two"})
	for name, c := range map[string]*testpki.Cert{"dyn1": dyn, "dyn2": dyn2} {
		writePEM(t, dir, name+".pem", c.ChainPEM())
		writePEM(t, dir, name+".key", c.KeyPEM())
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	proc, proxyAddr := startProxy(t, bin, dir, adminConfig(adminAddr))
	proc.waitPort(t, adminAddr)
	get := func() result {
		return curl(t, tl.curl, proxyAddr, hap, "X-Mtls-Client-Cert: dyn")
	}

	// Not defined yet: sent without a certificate, and without its server name
	// and CA either, so the upstream's certificate does not verify.
	checkResult(t, get(), want{status: 502, code: "hostname_mismatch", warning: "dyn"})
	cli(t, bin, dir, adminAddr, "add", "dyn", "-cert", "dyn1.pem", "-key", "dyn1.key",
		"-server-name", serverName, "-server-ca", "server-root.pem")
	checkResult(t, get(), want{status: 200, bodyHas: []string{"CN=e2e dyn one"}})

	cli(t, bin, dir, adminAddr, "disable", "dyn")
	checkErrorCode(t, get(), "client_certificate_required")
	cli(t, bin, dir, adminAddr, "enable", "dyn")
	cli(t, bin, dir, adminAddr, "replace", "dyn", "-cert", "dyn2.pem", "-key", "dyn2.key")
	checkResult(t, get(), want{status: 200, bodyHas: []string{"CN=e2e dyn two"}})
	if out := cli(t, bin, dir, adminAddr, "list"); !strings.Contains(out, "dyn") {
		t.Errorf("certs list does not show dyn:\n%s", out)
	}

	// A reload of the file keeps the admin change.
	if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	checkResult(t, get(), want{status: 200, bodyHas: []string{"CN=e2e dyn two"}})

	// So does a restart of the process.
	if err := proc.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	proc, proxyAddr = startProxy(t, bin, dir, adminConfig(adminAddr))
	proc.waitPort(t, adminAddr)
	checkResult(t, get(), want{status: 200, bodyHas: []string{"CN=e2e dyn two"}})

	cli(t, bin, dir, adminAddr, "delete", "dyn")
	checkResult(t, get(), want{status: 502, code: "hostname_mismatch", warning: "dyn"})
	if err := proc.stop(); err != nil {
		t.Errorf("mtlsproxy did not stop cleanly: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "state", "state.json"))
	if err != nil {
		t.Errorf("state file: %v", err)
	} else if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("state file mode %v; want 0600", mode)
	}
}

// TestFileWatchRotation replaces a certificate's files under the running binary
// and expects the new certificate upstream, without a signal.
func TestFileWatchRotation(t *testing.T) {
	tl := findTools(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir)
	p := newPKI(t, dir)
	hap := "http://" + startHAProxy(t, tl.haproxy, p).tls13 + "/hook"
	_, proxyAddr := startProxy(t, bin, dir, proxyConfig())
	checkResult(t, curl(t, tl.curl, proxyAddr, hap),
		want{status: 200, bodyHas: []string{"CN=e2e acme"}})

	next := p.clientMiddle.Client(testpki.Options{CommonName: "e2e acme renewed"})
	writePEM(t, dir, "acme.key.new", next.KeyPEM())
	writePEM(t, dir, "acme.pem.new", next.CertPEM())
	for _, name := range []string{"acme.key", "acme.pem"} {
		if err := os.Rename(filepath.Join(dir, name+".new"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	var res result
	for range 50 {
		res = curl(t, tl.curl, proxyAddr, hap)
		if strings.Contains(res.body, "CN=e2e acme renewed") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("renewed certificate never presented; last answer %d %q", res.status, res.body)
}

func writePEM(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}
