package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proxyConfig routes 127.0.0.1 to acme and defines four certificates: acme and
// globex from the client intermediate, retired, and rogue, whose root no upstream
// trusts. The certificates named in disabled get enabled = false. Paths are
// relative to the config file's folder.
func proxyConfig(disabled ...string) string {
	var b strings.Builder
	b.WriteString(`
[proxy]
shutdown_grace = "3s"

[egress]
# The upstreams of this suite listen on loopback, which deny_private refuses.
allow_cidrs = ["127.0.0.0/8"]

[admin]
disabled = true

[log]
format = "json"
level = "debug"

[[route]]
host = "127.0.0.1"
certificate = "acme"
`)
	certs := []struct{ name, ca string }{
		{name: "acme", ca: "client-intermediate.pem"},
		{name: "globex", ca: "client-intermediate.pem"},
		{name: "retired", ca: "client-intermediate.pem"},
		{name: "rogue", ca: "rogue-root.pem"},
	}
	for _, c := range certs {
		fmt.Fprintf(&b, "\n[[certificate]]\nname = %q\ncert_file = %q\nkey_file = %q\n",
			c.name, c.name+".pem", c.name+".key")
		fmt.Fprintf(&b, "ca_file = %q\nserver_name = %q\nserver_ca_file = %q\nenabled = %t\n",
			c.ca, serverName, "server-root.pem", !slices.Contains(disabled, c.name))
	}
	return b.String()
}

// want is what one request through the proxy must produce.
type want struct {
	status    int
	bodyHas   []string
	bodyLacks []string
	// code is the X-Mtls-Proxy-Error expected; "" for none.
	code string
	// warning asks for a response header warning about the named certificate.
	warning string
}

func TestEndToEnd(t *testing.T) {
	tl := findTools(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir)
	p := newPKI(t, dir)
	nginx := "http://" + startNginx(t, tl.nginx, p) + "/hook"
	hap := startHAProxy(t, tl.haproxy, p)
	hap13, hap12 := "http://"+hap.tls13+"/hook", "http://"+hap.tls12+"/hook"
	proc, proxyAddr := startProxy(t, bin, dir, proxyConfig("retired"))

	sni := " sni=" + serverName + " "
	acme := "subject=" + p.acme.Cert.Subject.String() + sni
	globex := "subject=" + p.globex.Cert.Subject.String() + sni
	const (
		useGlobex  = "X-Mtls-Client-Cert: globex"
		useRetired = "X-Mtls-Client-Cert: retired"
		useRogue   = "X-Mtls-Client-Cert: rogue"
	)
	tests := []struct {
		name   string
		url    string
		header string
		want   want
	}{
		{name: "nginx/route", url: nginx,
			want: want{status: 200, bodyHas: []string{acme}}},
		{name: "nginx/header", url: nginx, header: useGlobex,
			want: want{status: 200, bodyHas: []string{globex + "header=\n"}}},
		// nginx completes the handshake and answers 400 in HTTP; the proxy turns
		// that into the same codes HAProxy's alerts give.
		{name: "nginx/disabled", url: nginx, header: useRetired,
			want: want{status: 502, code: "client_certificate_required", warning: "retired"}},
		{name: "nginx/untrusted", url: nginx, header: useRogue,
			want: want{status: 502, code: "certificate_untrusted"}},
		{name: "haproxy13/route", url: hap13,
			want: want{status: 200, bodyHas: []string{"CN=e2e acme" + sni}}},
		{name: "haproxy13/header", url: hap13, header: useGlobex,
			want: want{status: 200, bodyHas: []string{"CN=e2e globex" + sni},
				bodyLacks: []string{"header=globex"}}},
		{name: "haproxy12/header", url: hap12, header: useGlobex,
			want: want{status: 200, bodyHas: []string{"CN=e2e globex" + sni},
				bodyLacks: []string{"header=globex"}}},
		{name: "haproxy13/disabled", url: hap13, header: useRetired,
			want: want{status: 502, code: "client_certificate_required",
				warning: "retired"}},
		{name: "haproxy12/disabled", url: hap12, header: useRetired,
			want: want{status: 502, code: "client_certificate_required",
				warning: "retired"}},
		{name: "haproxy13/untrusted", url: hap13, header: useRogue,
			want: want{status: 502, code: "certificate_untrusted"}},
		{name: "haproxy12/untrusted", url: hap12, header: useRogue,
			want: want{status: 502, code: "certificate_untrusted"}},
	}
	t.Run("requests", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				var headers []string
				if tt.header != "" {
					headers = append(headers, tt.header)
				}
				checkResult(t, curl(t, tl.curl, proxyAddr, tt.url, headers...), tt.want)
			})
		}
	})

	t.Run("reload on SIGHUP", func(t *testing.T) {
		cfg := filepath.Join(dir, "mtlsproxy.toml")
		if err := os.WriteFile(cfg, []byte(proxyConfig("retired", "globex")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		var res result
		for i := 0; i < 50; i++ {
			res = curl(t, tl.curl, proxyAddr, nginx, useGlobex)
			if res.status == 502 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		checkResult(t, res, want{status: 502, code: "client_certificate_required",
			warning: "globex"})
	})

	if err := proc.stop(); err != nil {
		t.Errorf("mtlsproxy did not stop cleanly on SIGTERM: %v", err)
	}
}

func checkResult(t *testing.T, res result, w want) {
	t.Helper()
	if res.status != w.status {
		t.Errorf("status %d, want %d\nheaders:\n%sbody:\n%s", res.status, w.status,
			res.headers, res.body)
	}
	for _, s := range w.bodyHas {
		if !strings.Contains(res.body, s) {
			t.Errorf("body lacks %q:\n%s", s, res.body)
		}
	}
	for _, s := range w.bodyLacks {
		if strings.Contains(res.body, s) {
			t.Errorf("body has %q:\n%s", s, res.body)
		}
	}
	checkErrorCode(t, res, w.code)
	if w.warning != "" && !strings.Contains(warningHeaders(res), w.warning) {
		t.Errorf("no warning header names %q; headers:\n%s", w.warning, res.headers)
	}
}

// checkErrorCode checks the X-Mtls-Proxy-Error header and, when there is one, that
// the JSON body tells the same code with a message.
func checkErrorCode(t *testing.T, res result, code string) {
	t.Helper()
	got := res.header("X-Mtls-Proxy-Error")
	switch {
	case code == "" && got != "":
		t.Errorf("X-Mtls-Proxy-Error = %q, want none; body:\n%s", got, res.body)
		return
	case code == "":
		return
	case got != code:
		t.Errorf("X-Mtls-Proxy-Error = %q, want %q; body:\n%s", got, code, res.body)
		return
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(res.body), &body); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, res.body)
	}
	if body.Error.Code != got || body.Error.Message == "" {
		t.Errorf("error body %+v does not match header code %q", body.Error, got)
	}
}

// warningHeaders joins the values of every response header whose name mentions a
// warning.
func warningHeaders(res result) string {
	var vals []string
	for _, line := range strings.Split(res.headers, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.Contains(strings.ToLower(k), "warning") {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return strings.Join(vals, "\n")
}
