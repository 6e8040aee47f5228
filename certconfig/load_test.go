package certconfig

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseUnknownKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		toml string
		want []string // one per line
	}{
		{"misspelt key", "[proxy]\nlistn = ':1'\n",
			[]string{`cfg.toml: unknown key "proxy.listn"; did you mean "proxy.listen"?`}},
		{"misspelt in array of tables", "[[certificate]]\nname = 'a'\ncert_fle = 'x'\n",
			[]string{`cfg.toml: unknown key "certificate.cert_fle"; did you mean ` +
				`"certificate.cert_file"?`}},
		{"dash for underscore", "[[route]]\nhost = 'a'\ncert-ificate = 'x'\n",
			[]string{`unknown key "route.cert-ificate"; did you mean "route.certificate"?`}},
		{"misspelt table, reported once", "[prxy]\nlisten = ':1'\nconnect = 'deny'\n",
			[]string{`cfg.toml: unknown key "prxy"; did you mean "proxy"?`}},
		{"nothing close", "[admin]\nzzzzzzzz = 1\n",
			[]string{`cfg.toml: unknown key "admin.zzzzzzzz"; remove it; the keys known in ` +
				"[admin] are listen, token_file, read_token_file, state_dir, disabled"}},
		{"nested unknown table", "[x.y]\nz = 1\n",
			[]string{`cfg.toml: unknown key "x"; remove it; the keys known at the top level ` +
				"are proxy, egress, admin, log, certificate, route"}},
		{"several", "[log]\nlevl = 'info'\nformt = 'json'\n", []string{
			`unknown key "log.levl"; did you mean "log.level"?`,
			`unknown key "log.formt"; did you mean "log.format"?`}},
		{"Dir and Path are not keys", "Dir = '/etc'\n", []string{`unknown key "Dir"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.toml), "cfg.toml")
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("error %v is not ErrUnknownKey", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %q, want %d lines", lines, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %q lacks %q", lines[i], w)
				}
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	data := "\ufeff[proxy]\r\nlisten = \"[::1]:3128\"\r\ndial_timeout = \"3s\"\r\n"
	cfg, err := Parse([]byte(data), "conf/mtlsproxy.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Proxy.Listen != "[::1]:3128" || cfg.Proxy.DialTimeout.Seconds() != 3 {
		t.Errorf("decoded %+v", cfg.Proxy)
	}
	wantDir, err := filepath.Abs("conf")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != "conf/mtlsproxy.toml" || cfg.Dir != wantDir {
		t.Errorf("Path %q Dir %q, want Dir %q", cfg.Path, cfg.Dir, wantDir)
	}
	if cfg.Proxy.CertHeader != "" {
		t.Error("Parse applied defaults")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, toml, want string }{
		{"syntax", "[proxy\n", "cfg.toml: toml: line 2: expected"},
		{"type", "[proxy]\nlisten = 3\n", "cfg.toml: toml: line 2"},
		{"duration", "[proxy]\ndial_timeout = \"ten seconds\"\n", `invalid duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.toml), "cfg.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	f := pki()
	dir := t.TempDir()
	writeFile(t, dir, "certs/acme.pem", f.ec.CertPEM(), 0o644)
	writeFile(t, dir, "certs/acme.key", f.ec.KeyPEM(), 0o600)
	writeFile(t, dir, "certs/chain.pem", f.inter.CertPEM(), 0o644)
	config := fmt.Sprintf(`
[proxy]
listen = "127.0.0.1:0"

[[certificate]]
name = "acme"
cert_file = "certs/acme.pem"
key_file = "certs/acme.key"
ca_file = "certs/chain.pem"
server_name = "hooks.acme.example"

[[certificate]]
name = "beta"
enabled = false
cert_pem = '''
  %s'''
key_pem = '''
  %s'''

[[route]]
host = "hooks.acme.example"
certificate = "acme"

[[route]]
host = "*.beta.example"
port = 8443
certificate = "beta"
tls = true
`, indent(string(f.rsa.CertPEM()), "    "), indent(string(f.rsa.KeyPEM()), "    "))
	path := writeFile(t, dir, "mtlsproxy.toml", []byte(config), 0o644)
	s, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Names, []string{"acme", "beta"}) {
		t.Errorf("Names = %q", s.Names)
	}
	acme, _ := s.Certificate("acme")
	beta, _ := s.Certificate("beta")
	if !acme.Enabled || beta.Enabled || acme.Source != SourceConfig ||
		!beta.Leaf().Equal(f.rsa.Cert) || len(acme.Chain) != 1 {
		t.Errorf("certificates: acme %+v, beta %+v", acme, beta)
	}
	if r := s.Route("x.beta.example", 8443); r == nil || r.Certificate != "beta" || !r.TLS {
		t.Errorf("route for x.beta.example:8443 = %+v", r)
	}
	if r := s.Route("x.beta.example", 443); r != nil {
		t.Errorf("route for x.beta.example:443 = %+v", r)
	}
	wantFiles := []string{path}
	for _, n := range []string{"acme.pem", "acme.key", "chain.pem"} {
		wantFiles = append(wantFiles, filepath.Join(dir, "certs", n))
	}
	if !slices.Equal(s.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", s.Files, wantFiles)
	}
	if s.Config.Proxy.CertHeader != DefaultCertHeader || s.LoadedAt.IsZero() {
		t.Errorf("defaults not applied or LoadedAt unset")
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	f := pki()
	cert, key := string(f.ec.CertPEM()), string(f.ec.KeyPEM())
	good := fmt.Sprintf("[[certificate]]\nname = \"acme\"\ncert_pem = '''%s'''\n"+
		"key_pem = '''%s'''\n", cert, key)
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"unknown certificate", good + "[[route]]\nhost = \"a.example\"\ncertificate = \"nope\"\n",
			[]string{`route 1 (host "a.example"): certificate "nope" is not defined; add a ` +
				`[[certificate]] with name = "nope" or fix the name`}},
		{"every certificate problem at once", good +
			"[[certificate]]\nname = \"b\"\ncert_file = \"b.pem\"\nkey_file = \"b.key\"\n" +
			"[[certificate]]\nname = \"c\"\ncert_pem = '''" + cert + "'''\nkey_pem = '''" +
			string(f.other.KeyPEM()) + "'''\n",
			[]string{`certificate "b": cert_file: cannot read`,
				`certificate "b": key_file: cannot read`,
				`certificate "c": key_pem: the private key (ECDSA P-256) does not match`}},
		{"validation before files", "[log]\nlevel = \"loud\"\n" +
			"[[certificate]]\nname = \"b\"\ncert_file = \"b.pem\"\n",
			[]string{`log.level: "loud"`, `certificate "b": neither key_file nor key_pem`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]byte(tc.toml), filepath.Join(t.TempDir(), "c.toml"))
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %q, want it to start with %q", lines[i], w)
				}
			}
			checkNoSecrets(t, err.Error(), "", []byte(key))
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()
	_, err := LoadFile(filepath.Join(t.TempDir(), "none.toml"))
	if err == nil || !strings.Contains(err.Error(), "none.toml") {
		t.Errorf("error %v", err)
	}
}

func TestNewSnapshot(t *testing.T) {
	t.Parallel()
	f := pki()
	build := func(name string) *Certificate {
		c, err := BuildCertificate(CertificateConfig{Name: name, CertPEM: string(f.ec.CertPEM()),
			KeyPEM: string(f.ec.KeyPEM())}, "", SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cfg := &Config{Routes: []RouteConfig{{Host: "a.example", Certificate: "gone"}}}
	cfg.ApplyDefaults()
	tests := []struct {
		name  string
		certs []*Certificate
		opts  []SnapshotOption
		want  string
	}{
		{"dangling refused", []*Certificate{build("a")}, nil,
			`route 1 (host "a.example"): certificate "gone" is not defined`},
		{"dangling allowed", []*Certificate{build("a")}, []SnapshotOption{AllowDangling()}, ""},
		{"duplicate names", []*Certificate{build("a"), build("a")},
			[]SnapshotOption{AllowDangling()}, `certificate "a": name is used twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewSnapshot(cfg, tc.certs, tc.opts...)
			if tc.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := s.Route("a.example", 443); r == nil || r.Certificate != "gone" {
				t.Errorf("route = %+v", r)
			}
			if _, ok := s.Certificate("gone"); ok || !slices.Equal(s.Names, []string{"a"}) {
				t.Errorf("certificates %q", s.Names)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"listn", "listen", 1}, {"kitten", "sitting", 3},
	}
	for _, tc := range tests {
		t.Run(tc.a+"/"+tc.b, func(t *testing.T) {
			if got := editDistance(tc.a, tc.b); got != tc.want {
				t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
