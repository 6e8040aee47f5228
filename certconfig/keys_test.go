package certconfig

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
	"github.com/youmark/pkcs8"
)

const testPass = "correct horse battery staple"

type keyCase struct {
	name     string
	leaf     *testpki.Cert
	keyPEM   []byte
	pass     string // the passphrase the key is encrypted with; "" if it is not
	wantType string
}

func keyCases(t *testing.T) []keyCase {
	f := pki()
	sec1, err := x509.MarshalECPrivateKey(f.ec.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return []keyCase{
		{"PKCS#1 RSA", f.rsa, pkcs1PEM(f.rsa.Key), "", "RSA 2048"},
		{"PKCS#8 RSA", f.rsa, f.rsa.KeyPEM(), "", "RSA 2048"},
		{"PKCS#8 ECDSA", f.ec, f.ec.KeyPEM(), "", "ECDSA P-256"},
		{"PKCS#8 Ed25519", f.ed, f.ed.KeyPEM(), "", "Ed25519"},
		{"SEC1", f.ec, sec1PEM(t, f.ec.Key), "", "ECDSA P-256"},
		{"SEC1 after EC PARAMETERS", f.ec, concat(ecParamsPEM(t), sec1PEM(t, f.ec.Key)), "",
			"ECDSA P-256"},
		{"PKCS#1 labelled PRIVATE KEY", f.rsa, pemBlock("PRIVATE KEY",
			x509.MarshalPKCS1PrivateKey(f.rsa.Key.(*rsa.PrivateKey))), "", "RSA 2048"},
		{"PKCS#8 PBES2 PBKDF2 AES-256", f.rsa,
			encryptedPKCS8(t, f.rsa.Key, testPass, pbkdf2Opts), testPass, "RSA 2048"},
		{"PKCS#8 PBES2 PBKDF2 3DES", f.ec,
			encryptedPKCS8(t, f.ec.Key, testPass, pbkdf2DESOpts), testPass, "ECDSA P-256"},
		{"PKCS#8 PBES2 scrypt", f.ed,
			encryptedPKCS8(t, f.ed.Key, testPass, scryptOpts), testPass, "Ed25519"},
		{"legacy PEM AES-256 RSA", f.rsa, legacyRSA(t, f.rsa.Key, testPass), testPass,
			"RSA 2048"},
		{"legacy PEM 3DES EC", f.ec,
			legacyPEM(t, "EC PRIVATE KEY", sec1, testPass, x509.PEMCipher3DES), testPass,
			"ECDSA P-256"},
	}
}

func TestBuildCertificateKeyFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range keyCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, dir, "c.pem", tc.leaf.CertPEM(), 0o644)
			writeFile(t, dir, "k.pem", tc.keyPEM, 0o600)
			cc := CertificateConfig{Name: "acme", CertFile: "c.pem", KeyFile: "k.pem"}
			if tc.pass != "" {
				writeFile(t, dir, "pass", []byte(tc.pass+"\n"), 0o600)
				cc.PassphraseFile = "pass"
			}
			c, err := BuildCertificate(cc, dir, SourceConfig)
			if err != nil {
				t.Fatal(err)
			}
			if c.KeyType != tc.wantType {
				t.Errorf("KeyType = %q, want %q", c.KeyType, tc.wantType)
			}
			if !c.Leaf().Equal(tc.leaf.Cert) || c.TLS.Leaf != nil {
				t.Errorf("leaf is %q, want %q", c.Leaf().Subject, tc.leaf.Cert.Subject)
			}
			k, ok := c.TLS.PrivateKey.(crypto.Signer)
			if !ok || !SameKey(tc.leaf.Cert, k) {
				t.Fatal("TLS.PrivateKey is not the key of the certificate")
			}
			checkSigns(t, k, tc.leaf.Cert.PublicKey)
		})
	}
}

// checkSigns signs a message with k the way a TLS handshake does and verifies the
// signature with pub.
func checkSigns(t *testing.T, k crypto.Signer, pub crypto.PublicKey) {
	t.Helper()
	msg := []byte("client certificate verify")
	digest := sha256.Sum256(msg)
	var ok bool
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		ok = err == nil && ecdsa.VerifyASN1(pub, digest[:], sig)
	case *rsa.PublicKey:
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err := k.Sign(rand.Reader, digest[:], opts)
		ok = err == nil && rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts) == nil
	case ed25519.PublicKey:
		sig, err := k.Sign(rand.Reader, msg, crypto.Hash(0))
		ok = err == nil && ed25519.Verify(pub, msg, sig)
	default:
		t.Fatalf("unexpected public key %T", pub)
	}
	if !ok {
		t.Errorf("a signature by the %T does not verify", k)
	}
}

func TestEncryptedKeyPassphraseProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range keyCases(t) {
		if tc.pass == "" {
			continue
		}
		for _, p := range []struct {
			name string
			pass string
			want error
			text string
		}{
			{"wrong passphrase", "not the passphrase", ErrWrongPassphrase, "wrong passphrase"},
			{"no passphrase", "", ErrPassphraseRequired, "set passphrase_file or passphrase_env"},
		} {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				cc := CertificateConfig{Name: "acme", CertPEM: string(tc.leaf.CertPEM()),
					KeyPEM: string(tc.keyPEM), Passphrase: p.pass}
				_, err := BuildCertificate(cc, t.TempDir(), SourceConfig)
				checkErr(t, err, []error{p.want}, `certificate "acme": key_pem: `, p.text)
				checkNoSecrets(t, err.Error(), p.pass, tc.keyPEM)
			})
		}
	}
}

func TestPassphraseSources(t *testing.T) {
	f := pki()
	keyPEM := encryptedPKCS8(t, f.ec.Key, testPass, pbkdf2Opts)
	t.Setenv("MTLSPROXY_TEST_PASS", testPass)
	t.Setenv("MTLSPROXY_TEST_EMPTY", "")
	tests := []struct {
		name string
		set  func(cc *CertificateConfig, dir string)
		want error
		text string
	}{
		{"passphrase_file with CRLF", func(cc *CertificateConfig, dir string) {
			writeFile(t, dir, "p", []byte(testPass+"\r\n"), 0o600)
			cc.PassphraseFile = "p"
		}, nil, ""},
		{"passphrase_env", func(cc *CertificateConfig, _ string) {
			cc.PassphraseEnv = "MTLSPROXY_TEST_PASS"
		}, nil, ""},
		{"passphrase from the API", func(cc *CertificateConfig, _ string) {
			cc.Passphrase = testPass
		}, nil, ""},
		{"passphrase_env unset", func(cc *CertificateConfig, _ string) {
			cc.PassphraseEnv = "MTLSPROXY_TEST_UNSET_VARIABLE"
		}, ErrEnvUnset, `passphrase_env: environment variable "MTLSPROXY_TEST_UNSET_VARIABLE"`},
		{"passphrase_env empty", func(cc *CertificateConfig, _ string) {
			cc.PassphraseEnv = "MTLSPROXY_TEST_EMPTY"
		}, ErrPassphraseRequired, "passphrase_env gives an empty passphrase"},
		{"passphrase_file missing", func(cc *CertificateConfig, _ string) {
			cc.PassphraseFile = "nope"
		}, ErrUnreadable, "passphrase_file: cannot read"},
		{"passphrase_file and passphrase_env", func(cc *CertificateConfig, _ string) {
			cc.PassphraseFile, cc.PassphraseEnv = "p", "MTLSPROXY_TEST_PASS"
		}, ErrBothSet, "passphrase_file and passphrase_env are both set; keep one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cc := CertificateConfig{Name: "acme", CertPEM: string(f.ec.CertPEM()),
				KeyPEM: string(keyPEM)}
			tc.set(&cc, dir)
			c, err := BuildCertificate(cc, dir, SourceConfig)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !c.Leaf().Equal(f.ec.Cert) {
					t.Error("wrong leaf")
				}
				return
			}
			checkErr(t, err, []error{tc.want}, `certificate "acme": `, tc.text)
			checkNoSecrets(t, err.Error(), testPass, keyPEM)
		})
	}
}

func TestUnsupportedKeys(t *testing.T) {
	t.Parallel()
	f := pki()
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519DER, err := x509.MarshalPKCS8PrivateKey(x25519)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224DER, err := x509.MarshalPKCS8PrivateKey(p224)
	if err != nil {
		t.Fatal(err)
	}
	gcm := &pkcs8.Opts{Cipher: pkcs8.AES256GCM, KDFOpts: pbkdf2Opts.KDFOpts}
	legacyUnknown := []byte(strings.Replace(string(legacyRSA(t, f.rsa.Key, testPass)),
		"AES-256-CBC", "CAMELLIA-256-CBC", 1))
	tests := []struct {
		name string
		key  []byte
		want error
		text string
	}{
		{"X25519", pemBlock("PRIVATE KEY", x25519DER), ErrUnsupportedKey, "X25519"},
		{"ECDSA P-224", pemBlock("PRIVATE KEY", p224DER), ErrUnsupportedKey, "P-224"},
		{"DSA label", pemBlock("DSA PRIVATE KEY", []byte{0x30, 0}), ErrUnsupportedKey, "DSA"},
		{"OpenSSH", pemBlock("OPENSSH PRIVATE KEY", []byte("openssh-key-v1")),
			ErrUnsupportedKey, "ssh-keygen"},
		{"PBES1", pbes1Key(t), ErrUnsupportedEncryption,
			"pbeWithSHAAnd3-KeyTripleDES-CBC (PBES1)"},
		{"PBES2 AES-GCM", encryptedPKCS8(t, f.ec.Key, testPass, gcm), ErrUnsupportedEncryption,
			"AES-256-GCM"},
		{"legacy unknown cipher", legacyUnknown, ErrUnsupportedEncryption, "CAMELLIA-256-CBC"},
		{"garbage DER", pemBlock("PRIVATE KEY", []byte("not a key at all")), ErrBadKey,
			"not a PKCS#1, PKCS#8 or SEC1 key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := CertificateConfig{Name: "acme", CertPEM: string(f.ec.CertPEM()),
				KeyPEM: string(tc.key), Passphrase: testPass}
			_, err := BuildCertificate(cc, t.TempDir(), SourceConfig)
			checkErr(t, err, []error{tc.want}, `certificate "acme": key_pem: `, tc.text)
			checkNoSecrets(t, err.Error(), testPass, tc.key)
		})
	}
}

// pbes1Key is an EncryptedPrivateKeyInfo using a PKCS#12 scheme, as written by
// `openssl pkcs8 -v1 PBE-SHA1-3DES`. Its payload is random: it is never decrypted.
func pbes1Key(t *testing.T) []byte {
	t.Helper()
	params, err := asn1.Marshal(struct {
		Salt       []byte
		Iterations int
	}{make([]byte, 8), 2048})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(encryptedKeyInfo{
		Algorithm: pkix.AlgorithmIdentifier{
			Algorithm:  asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3},
			Parameters: asn1.RawValue{FullBytes: params},
		},
		Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("ENCRYPTED PRIVATE KEY", der)
}

func TestPrintedCertificateShowsNoKey(t *testing.T) {
	t.Parallel()
	f := pki()
	cc := CertificateConfig{Name: "acme", CertPEM: string(f.ec.CertPEM()),
		KeyPEM: string(f.ec.KeyPEM())}
	c, err := BuildCertificate(cc, t.TempDir(), SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	// The private scalar, as fmt prints bytes and as it prints numbers.
	d := f.ec.Key.(*ecdsa.PrivateKey).D
	secrets := []string{strings.Trim(fmt.Sprint(d.Bytes()), "[]"), d.String()}
	_ = c.TLS.PrivateKey.(crypto.Signer).Public() // parsed, as after a first handshake
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "certificate", c)
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c),
		fmt.Sprintf("%+v", c.TLS), logged.String()} {
		for _, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("the private key shows in %q", out)
			}
		}
	}
}
