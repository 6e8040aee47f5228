package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestParseAuth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file string
		err        string // part of the error; "" for none
		users      map[string]string
	}{
		{name: "plain and hashed", file: "# users\n\nalice:wonder:land\r\n" +
			"bob:{SHA256}" + sha256Hex("builder") + "\n",
			users: map[string]string{"alice": "wonder:land", "bob": "builder"}},
		{name: "no colon", file: "alice\n", err: `line 1: no ":"`},
		{name: "empty user", file: "# x\n:secret\n", err: "line 2: the user name is empty"},
		{name: "empty password", file: "alice:\n", err: `user "alice": the password is empty`},
		{name: "listed twice", file: "a:1\na:2\n", err: `line 2: user "a" is listed twice`},
		{name: "bad hash", file: "a:{SHA256}zz-top\n", err: "64 hex digits"},
		{name: "short hash", file: "a:{SHA256}abcd\n", err: "64 hex digits"},
		{name: "no users", file: "# nobody\n\n", err: "no users"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := parseAuth([]byte(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				for _, secret := range []string{"secret", "zz-top", "abcd"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q repeats the password", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(a.users) != len(tc.users) {
				t.Errorf("%d users, want %d", len(a.users), len(tc.users))
			}
			for user, password := range tc.users {
				h := http.Header{"Proxy-Authorization": {basic(user, password)}}
				if got, ok := a.check(h); !ok || got != user {
					t.Errorf("%s with the right password: %q, %v", user, got, ok)
				}
			}
		})
	}
}

func TestAuthCheck(t *testing.T) {
	t.Parallel()
	a, err := parseAuth([]byte("alice:s3cret\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		values []string
		ok     bool
	}{
		{"right", []string{basic("alice", "s3cret")}, true},
		{"scheme in lowercase", []string{"basic " + strings.TrimPrefix(basic("alice", "s3cret"),
			"Basic ")}, true},
		{"missing", nil, false},
		{"wrong password", []string{basic("alice", "s3cret!")}, false},
		{"password prefix", []string{basic("alice", "s3cre")}, false},
		{"unknown user", []string{basic("bob", "s3cret")}, false},
		{"other scheme", []string{"Bearer s3cret"}, false},
		{"not base64", []string{"Basic %%%"}, false},
		{"no colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))},
			false},
		{"two headers", []string{basic("alice", "s3cret"), basic("alice", "s3cret")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, ok := a.check(http.Header{"Proxy-Authorization": tc.values}); ok != tc.ok {
				t.Errorf("check = %v, want %v", ok, tc.ok)
			}
		})
	}
}

// authSnapshot is a snapshot whose [proxy] auth_file is users.txt in dir, holding
// content (none is written when content is "").
func authSnapshot(t *testing.T, dir, content string) *certconfig.Snapshot {
	t.Helper()
	if content != "" {
		writeFile(t, filepath.Join(dir, "users.txt"), content)
	}
	s := newSnapshot(t, certconfig.ProxyConfig{AuthFile: "users.txt"},
		[]*certconfig.Certificate{clientCert("acme")})
	s.Config.Dir = dir
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// check407 asserts the proxy's answer to a client that did not authenticate.
func check407(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	checkError(t, resp, body, CodeProxyAuthRequired)
	if got := resp.Header.Get("Proxy-Authenticate"); got != `Basic realm="mtlsproxy"` {
		t.Errorf("Proxy-Authenticate %q", got)
	}
}

func TestProxyAuth(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	h := newHarness(t, authSnapshot(t, t.TempDir(), "alice:s3cret\n"))
	target := httpURL(up.URL) + "/hook"
	cases := []struct {
		name   string
		header []string
		ok     bool
	}{
		{"missing", nil, false},
		{"wrong password", []string{"Proxy-Authorization", basic("alice", "guess")}, false},
		{"unknown user", []string{"Proxy-Authorization", basic("mallory", "s3cret")}, false},
		{"right", []string{"Proxy-Authorization", basic("alice", "s3cret")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := append([]string{DefaultCertHeader, "acme"}, tc.header...)
			resp, body := h.get(t, target, header...)
			if !tc.ok {
				check407(t, resp, body)
				return
			}
			e := decodeEcho(t, resp, body)
			if e.ClientCN != "acme" {
				t.Errorf("upstream saw certificate %q", e.ClientCN)
			}
			if v, ok := e.Header["Proxy-Authorization"]; ok {
				t.Errorf("Proxy-Authorization reached the upstream: %q", v)
			}
		})
	}
	h.outcomesAtLeast(t, len(cases))
	logs := h.logs.String()
	for _, secret := range []string{"s3cret", "guess", basic("alice", "s3cret")[6:]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	lines := h.logs.logLines(t, "request")
	if last := lines[len(lines)-1]; last["proxy_user"] != "alice" {
		t.Errorf("last log line %v, want proxy_user alice", last)
	}
}

func TestProxyAuthConnect(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.RequestClientCert}.start(t)
	h := newHarness(t, authSnapshot(t, t.TempDir(), "alice:s3cret\n"))

	resp, body := rawConnect(t, h, strings.TrimPrefix(up.URL, "https://"))
	check407(t, resp, body)

	c := tunnelClient(h, http.Header{"Proxy-Authorization": {basic("alice", "s3cret")}})
	defer c.CloseIdleConnections()
	r, err := c.Get(up.URL)
	if err != nil {
		t.Fatalf("tunnel with the right password: %v", err)
	}
	body, _ = io.ReadAll(r.Body)
	_ = r.Body.Close()
	if e := decodeEcho(t, r, body); e.Proto != "HTTP/1.1" {
		t.Errorf("upstream saw %+v", e)
	}
}

// TestProxyAuthReload changes the password file and swaps in what a reload
// builds (a new *Config); an admin change (same *Config) keeps the users read.
func TestProxyAuthReload(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	dir := t.TempDir()
	first := authSnapshot(t, dir, "alice:old\n")
	h := newHarness(t, first)
	target := httpURL(up.URL)
	send := func(password string) int {
		resp, _ := h.get(t, target, DefaultCertHeader, "acme",
			"Proxy-Authorization", basic("alice", password))
		return resp.StatusCode
	}
	if got := send("old"); got != http.StatusOK {
		t.Fatalf("before the change: %d", got)
	}

	writeFile(t, filepath.Join(dir, "users.txt"), "alice:new\n")
	admin := *first
	h.cur.Swap(&admin)
	if got := send("old"); got != http.StatusOK {
		t.Errorf("after a swap that keeps the config: %d, want the old password kept", got)
	}

	h.cur.Swap(authSnapshot(t, dir, ""))
	if got := send("old"); got != http.StatusProxyAuthRequired {
		t.Errorf("old password after the reload: %d", got)
	}
	if got := send("new"); got != http.StatusOK {
		t.Errorf("new password after the reload: %d", got)
	}
}

// TestProxyAuthFileGone swaps in a snapshot whose file cannot be read (as when it
// vanishes between CheckSnapshot and the swap): every client is refused.
func TestProxyAuthFileGone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, authSnapshot(t, t.TempDir(), ""))
	resp, body := h.get(t, "http://127.0.0.1:1/", "Proxy-Authorization", basic("a", "b"))
	check407(t, resp, body)
	if !strings.Contains(h.logs.String(), "cannot read the proxy users") {
		t.Errorf("the unreadable file was not logged: %s", h.logs.String())
	}
}

func TestCheckSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "users.txt"), "alice:s3cret\n")
	writeFile(t, filepath.Join(dir, "broken.txt"), "alice\n")
	writeFile(t, filepath.Join(dir, "open.txt"), "alice:s3cret\n")
	if err := os.Chmod(filepath.Join(dir, "open.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*certconfig.Config)
		err  string
	}{
		{"no auth file", func(*certconfig.Config) {}, ""},
		{"good auth file", func(c *certconfig.Config) { c.Proxy.AuthFile = "users.txt" }, ""},
		{"missing auth file", func(c *certconfig.Config) { c.Proxy.AuthFile = "nope.txt" },
			"auth_file"},
		{"bad auth file", func(c *certconfig.Config) { c.Proxy.AuthFile = "broken.txt" },
			"line 1"},
		{"auth file readable by others", func(c *certconfig.Config) {
			c.Proxy.AuthFile = "open.txt"
		}, "chmod 600"},
		{"bad egress table", func(c *certconfig.Config) {
			c.Egress.AllowCIDRs = []string{"10.0.0.0/33"}
		}, "egress.allow_cidrs[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSnapshot(t, certconfig.ProxyConfig{}, nil)
			s.Config.Dir = dir
			tc.edit(s.Config)
			err := CheckSnapshot(s)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("CheckSnapshot: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("CheckSnapshot = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
