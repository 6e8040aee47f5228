package certconfig

import (
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary TOML to the loader: it must return a snapshot or an
// error, never panic, and an error must not echo inline key material.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(overlayConfig))
	f.Add([]byte("[proxy]\nlisten = \"127.0.0.1:3128\"\n[egress]\nallow_cidrs = [\"10.0.0.0/8\"]\n"))
	f.Add([]byte("[[route]]\nhost = \"*.example.com\"\nport = 443\ntls = true\n"))
	f.Add([]byte("[[certificate]]\nname = \"x\"\ncert_pem = '''\n-----BEGIN CERTIFICATE-----\nAAAA\n" +
		"-----END CERTIFICATE-----\n'''\nkey_pem = \"nope\"\n"))
	f.Add([]byte("[proxy]\ndial_timeout = \"-1s\"\nconnect = \"maybe\"\n"))
	f.Add([]byte("\xef\xbb\xbf[admin]\nlisten = \"[::1]:9901\"\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := Load(data, dir+"/fuzz.toml")
		if err == nil && snap == nil {
			t.Fatal("no snapshot and no error")
		}
	})
}

// FuzzBuildCertificate feeds arbitrary certificate and key text to the PEM and key
// parsers, with and without a passphrase.
func FuzzBuildCertificate(f *testing.F) {
	p := pki()
	f.Add(string(p.ec.ChainPEM()), string(p.ec.KeyPEM()), "")
	f.Add(string(p.ed.CertPEM()), string(p.ed.KeyPEM()), "secret")
	f.Add(string(p.rsa.CertPEM()), string(p.ec.KeyPEM()), "")
	f.Add("-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n",
		"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n", "pw")
	f.Add("text before\n-----BEGIN CERTIFICATE-----\n", "Proc-Type: 4,ENCRYPTED\n", "x")
	f.Fuzz(func(t *testing.T, certPEM, keyPEM, passphrase string) {
		cc := CertificateConfig{Name: "fuzz", CertPEM: certPEM, KeyPEM: keyPEM,
			Passphrase: passphrase}
		c, err := BuildCertificate(cc, t.TempDir(), SourceAPI)
		if err == nil {
			if c == nil || c.Leaf() == nil {
				t.Fatal("built certificate without a leaf")
			}
			return
		}
		if passphrase != "" && len(passphrase) > 3 && strings.Contains(err.Error(), passphrase) {
			t.Fatalf("error repeats the passphrase: %v", err)
		}
	})
}
