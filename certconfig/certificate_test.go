package certconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// goodFiles writes the ECDSA client of the test PKI with its key into dir and
// returns a configuration naming them.
func goodFiles(t *testing.T, dir string) CertificateConfig {
	t.Helper()
	f := pki()
	writeFile(t, dir, "acme.pem", f.ec.CertPEM(), 0o644)
	writeFile(t, dir, "acme.key", f.ec.KeyPEM(), 0o600)
	return CertificateConfig{Name: "acme", CertFile: "acme.pem", KeyFile: "acme.key"}
}

func TestBuildCertificateErrors(t *testing.T) {
	t.Parallel()
	f := pki()
	keyPEM := string(f.ec.KeyPEM())
	certPEM := string(f.ec.CertPEM())
	brokenBase64 := strings.Replace(certPEM, "\n", "\n!!!!", 2)
	tests := []struct {
		name      string
		change    func(t *testing.T, dir string, cc *CertificateConfig)
		sentinels []error
		text      []string
	}{
		{"cert file not found", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile = "missing.pem"
		}, []error{ErrUnreadable, fs.ErrNotExist}, []string{
			`certificate "acme": cert_file: cannot read `, "missing.pem", "check the path"}},
		{"cert file is not PEM", func(t *testing.T, dir string, cc *CertificateConfig) {
			writeFile(t, dir, "acme.pem", []byte("hello\n"), 0o644)
		}, []error{ErrNoPEM}, []string{`certificate "acme": cert_file: no PEM block found in `,
			"; the file must contain -----BEGIN CERTIFICATE-----"}},
		{"cert file is DER", func(t *testing.T, dir string, cc *CertificateConfig) {
			writeFile(t, dir, "acme.pem", f.ec.Cert.Raw, 0o644)
		}, []error{ErrNoPEM}, []string{"cert_file: ", "binary DER"}},
		{"inline cert is not PEM", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile, cc.CertPEM = "", "MIIBszCCAVmgAwIBAgIE"
		}, []error{ErrNoPEM}, []string{`certificate "acme": cert_pem: no PEM block found; ` +
			"the text must contain -----BEGIN CERTIFICATE-----"}},
		{"key in the cert file", func(t *testing.T, dir string, cc *CertificateConfig) {
			writeFile(t, dir, "acme.pem", f.ec.KeyPEM(), 0o600)
		}, []error{ErrNoCertificate}, []string{`certificate "acme": cert_file: no certificate ` +
			`found; it holds a private key (PRIVATE KEY); put it in key_file or key_pem`}},
		{"key next to the certificate", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile, cc.CertPEM = "", certPEM+keyPEM
		}, []error{ErrMisplacedBlock}, []string{`certificate "acme": cert_pem: besides ` +
			"certificates it holds a private key"}},
		{"certificate request", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile, cc.CertPEM = "", string(pemBlock("CERTIFICATE REQUEST", []byte{1}))
		}, []error{ErrNoCertificate}, []string{"cert_pem: ", "certificate request"}},
		{"broken base64", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile, cc.CertPEM = "", brokenBase64
		}, []error{ErrDamagedPEM}, []string{"cert_pem: 1 of 1 PEM blocks in the text cannot " +
			"be decoded"}},
		{"certificate in the key file", func(t *testing.T, dir string, cc *CertificateConfig) {
			writeFile(t, dir, "acme.key", concat(f.ec.CertPEM(), f.ec.KeyPEM()), 0o600)
		}, []error{ErrMisplacedBlock}, []string{`certificate "acme": key_file: holds a ` +
			"certificate; put it in cert_file or cert_pem"}},
		{"key file holds only a certificate", func(t *testing.T, dir string,
			cc *CertificateConfig) {
			writeFile(t, dir, "acme.key", f.ec.CertPEM(), 0o600)
		}, []error{ErrMisplacedBlock}, []string{"key_file: holds a certificate"}},
		{"two keys", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.KeyFile, cc.KeyPEM = "", keyPEM+string(f.other.KeyPEM())
		}, []error{ErrBadKey}, []string{"key_pem: holds 2 private keys"}},
		{"key of another certificate", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.KeyFile, cc.KeyPEM = "", string(f.rsa.KeyPEM())
		}, []error{ErrKeyMismatch}, []string{`certificate "acme": key_pem: the private key ` +
			"(RSA 2048) does not match the certificate in cert_file (ECDSA P-256 key)"}},
		{"leaf in ca_file", func(t *testing.T, dir string, cc *CertificateConfig) {
			writeFile(t, dir, "acme.pem", f.inter.CertPEM(), 0o644)
			writeFile(t, dir, "ca.pem", f.ec.CertPEM(), 0o644)
			cc.CAFile = "ca.pem"
		}, []error{ErrKeyMismatch}, []string{"key_file: the private key belongs to a " +
			"certificate in ca_file, not to any in cert_file"}},
		{"key in ca_file", func(t *testing.T, dir string, cc *CertificateConfig) {
			writeFile(t, dir, "ca.pem", concat(f.inter.CertPEM(), f.ec.KeyPEM()), 0o600)
			cc.CAFile = "ca.pem"
		}, []error{ErrMisplacedBlock}, []string{`certificate "acme": ca_file: besides`}},
		{"no certificate", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile = ""
		}, []error{ErrNotSet}, []string{`certificate "acme": neither cert_file nor cert_pem ` +
			"is set"}},
		{"no key", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.KeyFile = ""
		}, []error{ErrNotSet}, []string{"neither key_file nor key_pem is set"}},
		{"cert file and pem", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertPEM = certPEM
		}, []error{ErrBothSet}, []string{`certificate "acme": cert_file and cert_pem are ` +
			"both set; keep one"}},
		{"ca file and pem", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CAFile, cc.CAPEM = "ca.pem", string(f.inter.CertPEM())
		}, []error{ErrBothSet}, []string{"ca_file and ca_pem are both set; keep one"}},
		{"bad server CA", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.ServerCAPEM = "not a certificate"
		}, []error{ErrBadServerCA, ErrNoPEM}, []string{`certificate "acme": server_ca_pem: ` +
			"no PEM block found", "CAs that issued the upstream's certificate"}},
		{"key as server CA", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.ServerCAPEM = keyPEM
		}, []error{ErrBadServerCA}, []string{"server_ca_pem: no certificate found"}},
		{"server CA file missing", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.ServerCAFile = "upstream-ca.pem"
		}, []error{ErrUnreadable}, []string{"server_ca_file: cannot read"}},
		{"bad name", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.Name = "acme corp"
		}, []error{ErrBadName}, []string{`certificate "acme corp": name: name "acme corp" ` +
			"contains ' '"}},
		{"name of dots only", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.Name = ".."
		}, []error{ErrBadName}, []string{`name ".." is made of dots only`}},
		{"bad server name", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.ServerName = "bad name"
		}, nil, []string{`certificate "acme": server_name: "bad name" contains ' '`}},
		{"cert and key both missing", func(_ *testing.T, _ string, cc *CertificateConfig) {
			cc.CertFile, cc.KeyFile = "a.pem", "a.key"
		}, []error{ErrUnreadable}, []string{"cert_file: cannot read", "\n",
			"key_file: cannot read"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cc := goodFiles(t, dir)
			tc.change(t, dir, &cc)
			c, err := BuildCertificate(cc, dir, SourceConfig)
			if c != nil {
				t.Errorf("got a certificate with the error")
			}
			checkErr(t, err, tc.sentinels, tc.text...)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Certificate != cc.Name {
				t.Errorf("error %q is not a *FieldError for %q", err, cc.Name)
			}
			checkNoSecrets(t, err.Error(), "", []byte(keyPEM))
		})
	}
}

func TestPEMAsOperatorsPasteIt(t *testing.T) {
	t.Parallel()
	f := pki()
	cert, key := string(f.ec.CertPEM()), string(f.ec.KeyPEM())
	bagAttributes := "Bag Attributes\n    localKeyID: 01 02 03\nsubject=/CN=acme-ec\n" +
		"issuer=/CN=Test Intermediate\n"
	tests := []struct {
		name      string
		cert, key string
	}{
		{"text before and between blocks", bagAttributes + cert + "\nthe intermediate:\n" +
			string(f.inter.CertPEM()) + "that's all\n", "Key Attributes: <No Attributes>\n" + key},
		{"CRLF", strings.ReplaceAll(cert, "\n", "\r\n"), strings.ReplaceAll(key, "\n", "\r\n")},
		{"byte order mark", "\ufeff" + cert, "\ufeff" + key},
		{"indented", indent(cert, "\t  "), indent(key, "    ")},
		{"one line", strings.ReplaceAll(cert, "\n", " "), strings.ReplaceAll(key, "\n", " ")},
		{"no final newline", strings.TrimSpace(cert), strings.TrimSpace(key)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := CertificateConfig{Name: "acme", CertPEM: tc.cert, KeyPEM: tc.key}
			c, err := BuildCertificate(cc, t.TempDir(), SourceAPI)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Leaf().Equal(f.ec.Cert) {
				t.Errorf("leaf is %q", c.Leaf().Subject)
			}
		})
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	f := pki()
	leaf, inter, root := f.ec.CertPEM(), f.inter.CertPEM(), f.root.CertPEM()
	unrelated := f.otherRoot.CertPEM()
	tests := []struct {
		name     string
		certFile []byte
		caFile   []byte
		want     []*testpki.Cert
		complete bool
	}{
		{"leaf only", leaf, nil, nil, false},
		{"leaf and intermediate", leaf, inter, []*testpki.Cert{f.inter}, true},
		{"reversed with duplicates", concat(root, inter, leaf, inter, leaf, root), nil,
			[]*testpki.Cert{f.inter, f.root}, true},
		{"chain in ca_file, reversed", leaf, concat(root, inter),
			[]*testpki.Cert{f.inter, f.root}, true},
		{"split between files with repeats", concat(inter, leaf), concat(root, inter, leaf),
			[]*testpki.Cert{f.inter, f.root}, true},
		{"unrelated extras go last", concat(unrelated, leaf, root), inter,
			[]*testpki.Cert{f.inter, f.root, f.otherRoot}, true},
		{"missing intermediate", concat(leaf, root), nil, []*testpki.Cert{f.root}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cc := goodFiles(t, dir)
			writeFile(t, dir, "acme.pem", tc.certFile, 0o644)
			if tc.caFile != nil {
				cc.CAFile = writeFile(t, dir, "sub/ca.pem", tc.caFile, 0o644)
			}
			c, err := BuildCertificate(cc, dir, SourceConfig)
			if err != nil {
				t.Fatal(err)
			}
			checkChain(t, c, tc.want)
			if c.ChainComplete != tc.complete {
				t.Errorf("ChainComplete = %v, want %v", c.ChainComplete, tc.complete)
			}
			const w = "chain does not reach a root: the leaf's issuer is not configured; " +
				"if it is an intermediate CA, add it (and any above it) to ca_file"
			if got := slices.Contains(c.Warnings, w); got == tc.complete {
				t.Errorf("warnings %q: chain warning present = %v", c.Warnings, got)
			}
		})
	}
}

func checkChain(t *testing.T, c *Certificate, want []*testpki.Cert) {
	t.Helper()
	var got, wantNames []string
	for _, x := range c.Chain {
		got = append(got, x.Subject.CommonName)
	}
	for _, x := range want {
		wantNames = append(wantNames, x.Cert.Subject.CommonName)
	}
	if !slices.Equal(got, wantNames) {
		t.Errorf("chain = %q, want %q", got, wantNames)
	}
	if len(c.TLS.Certificate) != len(c.Chain)+1 {
		t.Fatalf("TLS has %d certificates, want %d", len(c.TLS.Certificate), len(c.Chain)+1)
	}
	for i, x := range c.Chain {
		if string(c.TLS.Certificate[i+1]) != string(x.Raw) {
			t.Errorf("TLS certificate %d is not chain certificate %d", i+1, i)
		}
	}
}

func TestCertificateFields(t *testing.T) {
	t.Parallel()
	f := pki()
	dir := t.TempDir()
	cc := goodFiles(t, dir)
	cc.CAFile = "ca.pem"
	writeFile(t, dir, "ca.pem", f.inter.CertPEM(), 0o644)
	writeFile(t, dir, "pass", []byte("unused\n"), 0o600)
	cc.PassphraseFile = "pass"
	cc.ServerCAPEM = string(f.otherRoot.CertPEM())
	cc.ServerName = "hooks.acme.example"
	disabled := false
	cc.Enabled = &disabled
	c, err := BuildCertificate(cc, dir, SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "acme" || c.Enabled || c.Source != SourceAPI ||
		c.ServerName != "hooks.acme.example" || c.InsecureSkipVerify {
		t.Errorf("settings not copied: %+v", c)
	}
	if c.KeyType != "ECDSA P-256" {
		t.Errorf("KeyType = %q", c.KeyType)
	}
	if len(c.Fingerprint) != 32*3-1 || c.Fingerprint != strings.ToLower(c.Fingerprint) ||
		strings.Count(c.Fingerprint, ":") != 31 {
		t.Errorf("Fingerprint = %q", c.Fingerprint)
	}
	if _, err := f.otherRoot.Cert.Verify(x509.VerifyOptions{Roots: c.ServerCAs}); err != nil {
		t.Errorf("ServerCAs do not hold the server CA: %v", err)
	}
	if string(c.ServerCAPEM) != string(f.otherRoot.CertPEM()) {
		t.Errorf("ServerCAPEM = %q", c.ServerCAPEM)
	}
	want := []string{filepath.Join(dir, "acme.pem"), filepath.Join(dir, "acme.key"),
		filepath.Join(dir, "pass"), filepath.Join(dir, "ca.pem")}
	if !slices.Equal(c.Files, want) {
		t.Errorf("Files = %q, want %q", c.Files, want)
	}
	if !hasWarning(c, "passphrase_file is set but the private key is not encrypted") {
		t.Errorf("warnings %q lack the unused passphrase", c.Warnings)
	}
	if len(c.ID) != 64 {
		t.Errorf("ID = %q", c.ID)
	}
}

func TestSystemRootsByDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := BuildCertificate(goodFiles(t, dir), dir, SourceConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerCAs != nil || c.ServerCAPEM != nil || !c.Enabled {
		t.Errorf("ServerCAs = %v, Enabled = %v", c.ServerCAs, c.Enabled)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	f := pki()
	now := time.Now()
	tests := []struct {
		name   string
		leaf   *testpki.Cert
		change func(cc *CertificateConfig)
		want   string
	}{
		{"expired", f.inter.Client(testpki.Options{NotBefore: now.Add(-72 * time.Hour),
			NotAfter: now.Add(-24 * time.Hour)}), nil, "certificate expired on " +
			FormatDate(now.Add(-24*time.Hour)) + "; replace it"},
		{"not yet valid", f.inter.Client(testpki.Options{NotBefore: now.Add(48 * time.Hour),
			NotAfter: now.Add(96 * time.Hour)}), nil, "certificate is not valid until " +
			FormatDate(now.Add(48*time.Hour))},
		{"expires soon", f.inter.Client(testpki.Options{
			NotAfter: now.Add(10*24*time.Hour - time.Minute)}), nil, "in 10 days; renew it"},
		{"insecure", f.ec, func(cc *CertificateConfig) { cc.InsecureSkipVerify = true },
			"insecure_skip_verify is on: the upstream's certificate is not verified; " +
				"use only in development"},
		{"server CA ignored", f.ec, func(cc *CertificateConfig) {
			cc.InsecureSkipVerify = true
			cc.ServerCAPEM = string(f.root.CertPEM())
		}, "server_ca_pem is ignored while insecure_skip_verify is on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := CertificateConfig{Name: "acme", CertPEM: string(tc.leaf.CertPEM()),
				KeyPEM: string(tc.leaf.KeyPEM())}
			if tc.change != nil {
				tc.change(&cc)
			}
			c, err := BuildCertificate(cc, t.TempDir(), SourceConfig)
			if err != nil {
				t.Fatal(err)
			}
			if !hasWarning(c, tc.want) {
				t.Errorf("warnings %q lack %q", c.Warnings, tc.want)
			}
		})
	}
}

func TestNoWarningsForAGoodCertificate(t *testing.T) {
	t.Parallel()
	f := pki()
	dir := t.TempDir()
	cc := goodFiles(t, dir)
	cc.CAPEM = string(concat(f.inter.CertPEM(), f.root.CertPEM()))
	c, err := BuildCertificate(cc, dir, SourceConfig)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestSecretFilePermissions(t *testing.T) {
	t.Parallel()
	f := pki()
	keyPEM := encryptedPKCS8(t, f.ec.Key, testPass, pbkdf2Opts)
	tests := []struct {
		name              string
		keyMode, passMode fs.FileMode
		want              []string
	}{
		{"private", 0o600, 0o400, nil},
		{"key readable by others", 0o644, 0o600, []string{"key file "}},
		{"key readable by group", 0o640, 0o600, []string{"key file "}},
		{"passphrase readable", 0o600, 0o604, []string{"passphrase file "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cc := goodFiles(t, dir)
			key := writeFile(t, dir, "acme.key", keyPEM, tc.keyMode)
			pass := writeFile(t, dir, "pass", []byte(testPass), tc.passMode)
			cc.PassphraseFile = "pass"
			c, err := BuildCertificate(cc, dir, SourceConfig)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range c.Warnings {
				if strings.Contains(w, "readable by group or others") {
					got = append(got, w)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("permission warnings %q, want %d", got, len(tc.want))
			}
			for i, prefix := range tc.want {
				path := key
				if prefix == "passphrase file " {
					path = pass
				}
				if got[i] != prefix+path+" is readable by group or others; chmod 600 it" {
					t.Errorf("warning %q", got[i])
				}
			}
		})
	}
}

func TestCertificateID(t *testing.T) {
	t.Parallel()
	f := pki()
	renewed := reissue(f.ec)
	base := CertificateConfig{Name: "acme", CertPEM: string(f.ec.CertPEM()),
		KeyPEM: string(f.ec.KeyPEM()), ServerName: "a.example"}
	id := func(t *testing.T, cc CertificateConfig) string {
		t.Helper()
		c, err := BuildCertificate(cc, t.TempDir(), SourceConfig)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	first := id(t, base)
	tests := []struct {
		name   string
		change func(cc *CertificateConfig)
		same   bool
	}{
		{"identical input", func(*CertificateConfig) {}, true},
		{"reformatted PEM", func(cc *CertificateConfig) {
			cc.CertPEM = strings.ReplaceAll(cc.CertPEM, "\n", "\r\n")
		}, true},
		{"other name and disabled", func(cc *CertificateConfig) {
			off := false
			cc.Name, cc.Enabled = "beta", &off
		}, true},
		{"server name", func(cc *CertificateConfig) { cc.ServerName = "b.example" }, false},
		{"insecure", func(cc *CertificateConfig) { cc.InsecureSkipVerify = true }, false},
		{"server CA", func(cc *CertificateConfig) {
			cc.ServerCAPEM = string(f.root.CertPEM())
		}, false},
		{"chain", func(cc *CertificateConfig) { cc.CAPEM = string(f.inter.CertPEM()) }, false},
		{"new certificate, same key", func(cc *CertificateConfig) {
			cc.CertPEM = string(renewed.CertPEM())
		}, false},
		{"new key and certificate", func(cc *CertificateConfig) {
			cc.CertPEM, cc.KeyPEM = string(f.other.CertPEM()), string(f.other.KeyPEM())
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := base
			tc.change(&cc)
			if got := id(t, cc); (got == first) != tc.same {
				t.Errorf("ID %s, first %s: same = %v, want %v", got, first, got == first, tc.same)
			}
		})
	}
}

func TestRenewedCertificateForTheSameKey(t *testing.T) {
	t.Parallel()
	f := pki()
	renewed := reissue(f.ec)
	cc := CertificateConfig{Name: "acme",
		CertPEM: string(concat(renewed.CertPEM(), f.ec.CertPEM(), f.inter.CertPEM())),
		KeyPEM:  string(f.ec.KeyPEM())}
	c, err := BuildCertificate(cc, t.TempDir(), SourceConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf().Equal(renewed.Cert) {
		t.Errorf("leaf valid until %s, want the later one", c.Leaf().NotAfter)
	}
	checkChain(t, c, []*testpki.Cert{f.inter})
	if !hasWarning(c, "cert_pem holds 2 certificates for this key") {
		t.Errorf("warnings %q", c.Warnings)
	}
}

// TestPresentedOverTLS checks that what is built is what a server verifying client
// certificates accepts: the leaf with its intermediate, signed with the loaded key.
func TestPresentedOverTLS(t *testing.T) {
	t.Parallel()
	f := pki()
	server := f.root.Server(testpki.Options{IPs: loopbackIPs()})
	for _, tc := range keyCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := CertificateConfig{Name: "acme", CertPEM: string(tc.leaf.CertPEM()),
				KeyPEM: string(tc.keyPEM), Passphrase: tc.pass,
				CAPEM: string(f.inter.CertPEM()), ServerCAPEM: string(f.root.CertPEM())}
			c, err := BuildCertificate(cc, t.TempDir(), SourceConfig)
			if err != nil {
				t.Fatal(err)
			}
			if got := roundTrip(t, server, c); got != tc.leaf.Cert.Subject.CommonName {
				t.Errorf("server saw client %q, want %q", got, tc.leaf.Cert.Subject.CommonName)
			}
		})
	}
}

// roundTrip makes one request to a server that requires and verifies a client
// certificate issued under the test root, and returns the client's common name.
func roundTrip(t *testing.T, server *testpki.Cert, c *Certificate) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName)
		}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{server.TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki().root.Pool(),
	}
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:      c.ServerCAs,
			Certificates: []tls.Certificate{c.TLS},
		},
	}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
