package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cliEnv is a live admin API with token and PEM files for the command line.
type cliEnv struct {
	*env
	adminFile, readFile string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	e := &cliEnv{env: newEnv(t, "")}
	p := pki()
	e.adminFile = e.file("admin.token", adminToken+"\n")
	e.readFile = e.file("read.token", readToken)
	e.file("api.pem", string(p.api.CertPEM()))
	e.file("api.key", encryptedKeyPEM(t, p.api, passphrase))
	e.file("api.pass", passphrase+"\n")
	e.file("inter.pem", string(p.inter.CertPEM()))
	e.file("renewed.pem", string(p.renewed.CertPEM()))
	e.file("renewed.key", string(p.renewed.KeyPEM()))
	return e
}

func (e *cliEnv) file(name, data string) string {
	e.write(name, data)
	return filepath.Join(e.dir, name)
}

// run runs the command line against the env with the admin token, unless args
// name another token file.
func (e *cliEnv) run(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	full := append([]string{"-admin", e.ts.URL, "-token-file", e.adminFile}, args...)
	var out, errOut bytes.Buffer
	code = RunCLI(context.Background(), full, &out, &errOut)
	what := "certs " + strings.Join(args, " ")
	checkNoSecrets(e.t, what, out.Bytes())
	checkNoKeyLabel(e.t, what, out.Bytes())
	checkNoSecrets(e.t, what, errOut.Bytes())
	return code, out.String(), errOut.String()
}

func (e *cliEnv) mustRun(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("certs %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "),
			code, out, errOut)
	}
	return out
}

func TestCLILifecycle(t *testing.T) {
	e := newCLIEnv(t)
	dir := e.dir
	at := func(name string) string { return filepath.Join(dir, name) }

	out := e.mustRun("add", "acme", "-cert", at("api.pem"), "-key", at("api.key"),
		"-passphrase-file", at("api.pass"), "-ca", at("inter.pem"),
		"-server-name", "sni.acme.example")
	for _, want := range []string{"added acme", "sni.acme.example", fingerprintOf(pki().api)} {
		if !strings.Contains(out, want) {
			t.Errorf("add output lacks %q:\n%s", want, out)
		}
	}

	out = e.mustRun("list")
	if !strings.Contains(out, "NAME") || !regexpLine(out, "acme", "yes", "api") ||
		!regexpLine(out, "cfg", "yes", "config") {
		t.Errorf("list output:\n%s", out)
	}

	out = e.mustRun("show", "acme")
	if !strings.Contains(out, "server name:") || !strings.Contains(out, "sni.acme.example") {
		t.Errorf("show output:\n%s", out)
	}

	if out = e.mustRun("disable", "acme"); !strings.Contains(out, "disabled acme") {
		t.Errorf("disable output:\n%s", out)
	}
	if out = e.mustRun("enable", "acme"); !strings.Contains(out, "enabled acme") {
		t.Errorf("enable output:\n%s", out)
	}
	e.mustRun("disable", "acme")
	var l ListResponse
	if err := json.Unmarshal([]byte(e.mustRun("list", "-json")), &l); err != nil {
		t.Fatalf("list -json is not JSON: %v", err)
	}
	if v, ok := findView(l, "acme"); !ok || v.Enabled {
		t.Errorf("list -json after disable: %+v", l.Certificates)
	}

	e.mustRun("replace", "acme", "-cert", at("renewed.pem"), "-key", at("renewed.key"))
	v := e.show("acme")
	if v.SHA256Fingerprint != fingerprintOf(pki().renewed) {
		t.Errorf("after replace the fingerprint is %s", v.SHA256Fingerprint)
	}
	if len(v.Chain) != 1 || !hasWarning(v.Warnings, "passphrase") {
		t.Errorf("replace without -ca or -no-passphrase: chain %v, warnings %v (want the "+
			"stored chain and passphrase kept)", v.Chain, v.Warnings)
	}
	e.mustRun("replace", "acme", "-cert", at("renewed.pem"), "-key", at("renewed.key"),
		"-no-ca", "-no-passphrase")
	if v = e.show("acme"); len(v.Chain) != 0 || hasWarning(v.Warnings, "passphrase") {
		t.Errorf("after -no-ca -no-passphrase: chain %v, warnings %v", v.Chain, v.Warnings)
	}

	if out = e.mustRun("delete", "acme"); !strings.Contains(out, "deleted acme") {
		t.Errorf("delete output:\n%s", out)
	}
	code, _, errOut := e.run("show", "acme")
	if code != 1 || !strings.Contains(errOut, "not_found") ||
		!strings.Contains(errOut, `"acme" does not exist`) {
		t.Errorf("show after delete: exit %d, stderr %q", code, errOut)
	}
}

func TestCLIListShowsDanglingRoutes(t *testing.T) {
	e := newCLIEnv(t)
	e.add(addRequest("acme", pki().api))
	e.withRoute("hooks.acme.example", "acme")
	e.mustRun("delete", "acme")
	out := e.mustRun("list")
	if !strings.Contains(out, `dangling route: hooks.acme.example names missing `+
		`certificate "acme"`) {
		t.Errorf("list output lacks the dangling route:\n%s", out)
	}
}

// regexpLine reports whether one line of text holds all the words, in order.
func regexpLine(text string, words ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		i := 0
		for _, f := range fields {
			if i < len(words) && f == words[i] {
				i++
			}
		}
		if i == len(words) {
			return true
		}
	}
	return false
}

func TestCLIErrors(t *testing.T) {
	e := newCLIEnv(t)
	cert, key := filepath.Join(e.dir, "renewed.pem"), filepath.Join(e.dir, "renewed.key")
	badMode := e.file("open.token", adminToken)
	if err := os.Chmod(badMode, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no command", nil, 2, "a command is required"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"show without name", []string{"show"}, 2, "NAME is missing"},
		{"extra argument", []string{"enable", "a", "b"}, 2, "unexpected argument"},
		{"add without key", []string{"add", "x", "-cert", cert}, 2, "-key are required"},
		{"unknown flag", []string{"list", "-color"}, 2, "not defined"},
		{"missing file", []string{"add", "x", "-cert", cert, "-key", cert + ".absent"}, 1,
			"-key"},
		{"API refusal", []string{"add", "cfg", "-cert", cert, "-key", key}, 1,
			"conflict: certificate \"cfg\" is defined in the config file"},
		{"validation", []string{"add", "x", "-cert", key, "-key", key}, 1,
			"validation_failed: certificate_pem"},
		{"read token may not change", []string{"-token-file", e.readFile, "disable", "cfg"},
			1, "forbidden"},
		{"token file readable by others", []string{"-token-file", badMode, "list"}, 1,
			"chmod 600"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := e.run(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code,
					tc.inStderr)
			}
		})
	}
	if v := e.show("cfg"); !v.Enabled {
		t.Error("a refused command changed cfg")
	}
}

func TestCLIHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := RunCLI(context.Background(), []string{"help"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "usage: mtlsproxy certs") {
		t.Errorf("help: exit %d, stdout %q", code, out.String())
	}
}

// TestCLIEnvironment is not parallel: it sets the process environment.
func TestCLIEnvironment(t *testing.T) {
	e := newCLIEnv(t)
	t.Setenv(EnvAdminURL, e.ts.URL)
	t.Setenv(EnvTokenFile, e.readFile)
	var out, errOut bytes.Buffer
	code := RunCLI(context.Background(), []string{"list", "-json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var l ListResponse
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	if _, ok := findView(l, "cfg"); !ok {
		t.Errorf("list through the environment's address lacks cfg: %s", out.String())
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		name string
		args []string
		pos  []string
		cert string
	}{
		{"flags after", []string{"acme", "-cert", "c.pem"}, []string{"acme"}, "c.pem"},
		{"flags before", []string{"-cert", "c.pem", "acme"}, []string{"acme"}, "c.pem"},
		{"after a double dash", []string{"-cert", "c.pem", "--", "-odd-name", "-cert"},
			[]string{"-odd-name", "-cert"}, "c.pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("t", &bytes.Buffer{})
			m := &material{}
			materialFlags(fs, m)
			pos, err := parseInterleaved(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(pos, " ") != strings.Join(tc.pos, " ") || m.cert != tc.cert {
				t.Errorf("positional %q cert %q, want %q %q", pos, m.cert, tc.pos, tc.cert)
			}
		})
	}
}
