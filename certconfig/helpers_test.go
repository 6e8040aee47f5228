package certconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
	"github.com/youmark/pkcs8"
)

// fixture is the test PKI shared by all tests: generating RSA keys is slow, so
// every certificate here is made once per test binary and only read afterwards.
type fixture struct {
	root, inter *testpki.Cert
	ec          *testpki.Cert // ECDSA P-256 client issued by inter
	rsa         *testpki.Cert // RSA 2048 client issued by inter
	ed          *testpki.Cert // Ed25519 client issued by inter
	other       *testpki.Cert // an unrelated ECDSA client
	otherRoot   *testpki.Cert // an unrelated root
}

var pki = sync.OnceValue(func() *fixture {
	root := testpki.NewRoot("Test Root")
	inter := root.Intermediate("Test Intermediate")
	otherRoot := testpki.NewRoot("Other Root")
	client := func(issuer *testpki.Cert, cn string, key testpki.KeyType) *testpki.Cert {
		// A year, so that no test sees an "expires soon" warning it did not ask for.
		year := time.Now().Add(365 * 24 * time.Hour)
		return issuer.Client(testpki.Options{CommonName: cn, Key: key, NotAfter: year})
	}
	return &fixture{
		root:      root,
		inter:     inter,
		ec:        client(inter, "acme-ec", testpki.ECDSA),
		rsa:       client(inter, "acme-rsa", testpki.RSA),
		ed:        client(inter, "acme-ed", testpki.Ed25519),
		other:     client(otherRoot, "other", testpki.ECDSA),
		otherRoot: otherRoot,
	}
})

// writeFile writes data to name inside dir with the given mode and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask must not change the mode
		t.Fatal(err)
	}
	return path
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func pkcs1PEM(k crypto.Signer) []byte {
	return pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey)))
}

func sec1PEM(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("EC PRIVATE KEY", der)
}

// ecParamsPEM is the block `openssl ecparam -genkey` writes before the key.
func ecParamsPEM(t *testing.T) []byte {
	t.Helper()
	der, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("EC PARAMETERS", der)
}

func encryptedPKCS8(t *testing.T, k crypto.Signer, pass string, opts *pkcs8.Opts) []byte {
	t.Helper()
	der, err := pkcs8.MarshalPrivateKey(k, []byte(pass), opts)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("ENCRYPTED PRIVATE KEY", der)
}

var (
	pbkdf2Opts = &pkcs8.Opts{Cipher: pkcs8.AES256CBC, KDFOpts: pkcs8.PBKDF2Opts{
		SaltSize: 16, IterationCount: 2048, HMACHash: crypto.SHA256}}
	pbkdf2DESOpts = &pkcs8.Opts{Cipher: pkcs8.TripleDESCBC, KDFOpts: pkcs8.PBKDF2Opts{
		SaltSize: 8, IterationCount: 2048, HMACHash: crypto.SHA1}}
	scryptOpts = &pkcs8.Opts{Cipher: pkcs8.AES128CBC, KDFOpts: pkcs8.ScryptOpts{
		SaltSize: 16, CostParameter: 1 << 10, BlockSize: 8, ParallelizationParameter: 1}}
)

// legacyPEM encrypts a key the way `openssl rsa -aes256` used to.
func legacyPEM(t *testing.T, typ string, der []byte, pass string,
	alg x509.PEMCipher) []byte {
	t.Helper()
	//nolint:staticcheck // the deprecated format is what the loader must still read
	b, err := x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(pass), alg)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b)
}

func legacyRSA(t *testing.T, k crypto.Signer, pass string) []byte {
	return legacyPEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey)),
		pass, x509.PEMCipherAES256)
}

// reissue makes a new certificate for the key of c, signed by the same issuer and
// valid an hour longer.
func reissue(c *testpki.Cert) *testpki.Cert {
	return c.Issuer.Client(testpki.Options{CommonName: c.Cert.Subject.CommonName,
		Signer: c.Key, NotAfter: c.Cert.NotAfter.Add(time.Hour)})
}

// checkErr fails unless err matches every sentinel and contains every fragment.
func checkErr(t *testing.T, err error, sentinels []error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", fragments)
	}
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			t.Errorf("error %q does not match %v", err, s)
		}
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err, f)
		}
	}
}

// checkNoSecrets fails if the text shows any part of a PEM body or the passphrase.
func checkNoSecrets(t *testing.T, text string, pass string, pems ...[]byte) {
	t.Helper()
	if pass != "" && strings.Contains(text, pass) {
		t.Errorf("text %q shows the passphrase", text)
	}
	for _, p := range pems {
		for _, line := range strings.Split(string(p), "\n") {
			if len(line) > 16 && !strings.HasPrefix(line, "-----") &&
				strings.Contains(text, line[:16]) {
				t.Errorf("text %q shows PEM content", text)
			}
		}
	}
}

func hasWarning(c *Certificate, fragment string) bool {
	for _, w := range c.Warnings {
		if strings.Contains(w, fragment) {
			return true
		}
	}
	return false
}

func loopbackIPs() []net.IP { return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} }
