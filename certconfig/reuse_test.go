package certconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// reuseConfig writes two certificates sharing one ca_file, a and b, and returns the
// config path.
func reuseConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	f := pki()
	writeFile(t, dir, "a.pem", f.ec.CertPEM(), 0o644)
	writeFile(t, dir, "a.key", f.ec.KeyPEM(), 0o600)
	writeFile(t, dir, "b.pem", f.rsa.CertPEM(), 0o644)
	writeFile(t, dir, "b.key", f.rsa.KeyPEM(), 0o600)
	writeFile(t, dir, "chain.pem", f.inter.CertPEM(), 0o644)
	cfg := `
[admin]
disabled = true

[[certificate]]
name = "a"
cert_file = "a.pem"
key_file = "a.key"
ca_file = "chain.pem"
` + extra + `
[[certificate]]
name = "b"
cert_file = "b.pem"
key_file = "b.key"
ca_file = "chain.pem"
`
	return writeFile(t, dir, "mtlsproxy.toml", []byte(cfg), 0o600)
}

func reload(t *testing.T, path string, prev *Snapshot) *Snapshot {
	t.Helper()
	s, err := LoadFileWith(path, LoadOptions{Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReloadReusesUnchangedCertificates(t *testing.T) {
	t.Parallel()
	f := pki()
	dir := t.TempDir()
	path := reuseConfig(t, dir, "")
	first := reload(t, path, nil)

	same := reload(t, path, first)
	for _, name := range []string{"a", "b"} {
		if same.Certificates[name] != first.Certificates[name] {
			t.Errorf("%s was built again although nothing changed", name)
		}
	}
	if reload(t, path, nil).Certificates["a"] == first.Certificates["a"] {
		t.Error("a load without Previous returned a certificate of an earlier load")
	}

	// b's files now hold another certificate: only b is built again.
	writeFile(t, dir, "b.pem", f.other.CertPEM(), 0o644)
	writeFile(t, dir, "b.key", f.other.KeyPEM(), 0o600)
	next := reload(t, path, same)
	if next.Certificates["a"] != same.Certificates["a"] {
		t.Error("a was built again although only b changed")
	}
	b := next.Certificates["b"]
	if b == same.Certificates["b"] || b.ID == same.Certificates["b"].ID ||
		!b.Leaf().Equal(f.other.Cert) {
		t.Error("b still holds the old certificate")
	}

	// The shared chain file changes: both are built again.
	writeFile(t, dir, "chain.pem", append(f.inter.CertPEM(), f.root.CertPEM()...), 0o644)
	again := reload(t, path, next)
	for _, name := range []string{"a", "b"} {
		if again.Certificates[name] == next.Certificates[name] {
			t.Errorf("%s was kept although its ca_file changed", name)
		}
	}
	if len(again.Certificates["a"].Chain) != 2 {
		t.Errorf("a's chain has %d certificates, want 2", len(again.Certificates["a"].Chain))
	}
}

func TestReloadRebuildsOnSettingsAndPermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := reuseConfig(t, dir, "")
	first := reload(t, path, nil)

	// A setting of a changes in the file: a is built again, b kept.
	reuseConfig(t, dir, `server_name = "api.example"`)
	next := reload(t, path, first)
	if a := next.Certificates["a"]; a == first.Certificates["a"] || a.ServerName != "api.example" {
		t.Error("a kept its old settings")
	}
	if next.Certificates["b"] != first.Certificates["b"] {
		t.Error("b was built again although it did not change")
	}

	// a's key becomes readable by others: the warning must appear on reload.
	if err := os.Chmod(filepath.Join(dir, "a.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := reload(t, path, next)
	if !slices.ContainsFunc(open.Certificates["a"].Warnings, func(w string) bool {
		return strings.Contains(w, "readable by group or others")
	}) {
		t.Errorf("warnings %q lack the key permission warning", open.Certificates["a"].Warnings)
	}
}

func TestReloadBringsReusedWarningsUpToDate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := reload(t, reuseConfig(t, dir, ""), nil).Certificates["a"]
	if got := c.at(time.Now()); got != c {
		t.Error("at returned a copy although the warnings did not change")
	}
	later := c.at(c.NotAfter.Add(time.Hour))
	if later == c || !slices.ContainsFunc(later.Warnings, func(w string) bool {
		return strings.Contains(w, "certificate expired on")
	}) {
		t.Errorf("warnings after expiry are %q", later.Warnings)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("the original changed: %q", c.Warnings)
	}
	chainExpired := c.WarningsAt(c.Chain[0].NotAfter.Add(time.Hour))
	if !slices.ContainsFunc(chainExpired, func(w string) bool {
		return strings.Contains(w, "chain certificate") && strings.Contains(w, "expired on")
	}) {
		t.Errorf("warnings after the chain expired are %q", chainExpired)
	}
}
