// Package testpki makes throwaway certificate authorities and certificates for
// tests: roots, intermediates, servers and clients, with the dates, names and key
// types a test asks for. Nothing it makes is meant to be trusted outside a test.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

// KeyType chooses the algorithm of a generated key.
type KeyType int

// Key types a test can ask for.
const (
	ECDSA KeyType = iota // P-256, the default: fast to generate
	RSA                  // 2048 bits
	Ed25519
)

// Options shape one certificate. Zero values give a certificate valid from an hour
// ago for a day, with an ECDSA P-256 key.
type Options struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
	Key        KeyType
	// Serial, when non-zero, is used instead of a counter.
	Serial int64
	// Signer, when set, is the certificate's key instead of a new one (a renewal
	// that keeps its key).
	Signer crypto.Signer
}

// Cert is a generated certificate with its key and its issuer.
type Cert struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Issuer *Cert // nil for a self-signed certificate
}

var serial atomic.Int64

func init() { serial.Store(time.Now().UnixNano() % 1e9) }

// NewRoot makes a self-signed CA.
func NewRoot(cn string) *Cert {
	return issue(nil, Options{CommonName: cn}, true)
}

// Intermediate makes a CA signed by c.
func (c *Cert) Intermediate(cn string) *Cert {
	return issue(c, Options{CommonName: cn}, true)
}

// Server makes a server certificate signed by c for the given DNS names and IPs.
func (c *Cert) Server(o Options) *Cert {
	if o.CommonName == "" && len(o.DNSNames) > 0 {
		o.CommonName = o.DNSNames[0]
	}
	return issue(c, o, false)
}

// Client makes a client certificate signed by c.
func (c *Cert) Client(o Options) *Cert { return issue(c, o, false) }

// SelfSigned makes a self-signed leaf (not a CA) usable by servers and clients.
func SelfSigned(o Options) *Cert { return issue(nil, o, false) }

func issue(parent *Cert, o Options, isCA bool) *Cert {
	key := o.Signer
	if key == nil {
		key = newKey(o.Key)
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(24 * time.Hour)
	}
	sn := o.Serial
	if sn == 0 {
		sn = serial.Add(1)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(sn),
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"testpki"}},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if o.Key == RSA {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		panic(fmt.Sprintf("testpki: create certificate %q: %v", o.CommonName, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(fmt.Sprintf("testpki: parse certificate %q: %v", o.CommonName, err))
	}
	return &Cert{Cert: cert, Key: key, Issuer: parent}
}

func newKey(t KeyType) crypto.Signer {
	var (
		k   crypto.Signer
		err error
	)
	switch t {
	case RSA:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		panic(fmt.Sprintf("testpki: generate key: %v", err))
	}
	return k
}

// CertPEM is the certificate alone in PEM form.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// ChainPEM is the certificate followed by its issuers up to, but not including, the
// root.
func (c *Cert) ChainPEM() []byte {
	out := c.CertPEM()
	for p := c.Issuer; p != nil && p.Issuer != nil; p = p.Issuer {
		out = append(out, p.CertPEM()...)
	}
	return out
}

// KeyPEM is the private key as unencrypted PKCS#8.
func (c *Cert) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		panic(fmt.Sprintf("testpki: marshal key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Pool is a certificate pool holding c.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// TLS is c with its issuers up to the root (excluded) as a tls.Certificate.
func (c *Cert) TLS() tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
	for p := c.Issuer; p != nil && p.Issuer != nil; p = p.Issuer {
		tc.Certificate = append(tc.Certificate, p.Cert.Raw)
	}
	return tc
}
