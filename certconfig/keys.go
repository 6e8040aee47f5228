package certconfig

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"sync"
)

// privateKey is a decoded private key and whether it was stored encrypted. der is
// the unencrypted DER it was parsed from, nil for a key that was encrypted.
type privateKey struct {
	signer    crypto.Signer
	encrypted bool
	der       []byte
}

// presented is the key to put in the tls.Certificate: a key read in the clear is
// kept as its DER and parsed again on first use (see deferredKey); a decrypted key
// is kept parsed, since its passphrase is not kept.
func (k *privateKey) presented() crypto.Signer {
	if k.der == nil {
		return k.signer
	}
	return &deferredKey{der: k.der}
}

// deferredKey is a private key held as DER until it first signs. A parsed ECDSA or
// RSA key is a dozen objects and about twice the DER's size; with thousands of
// certificates, most of which may never be used by a given process, keeping them
// parsed was a fifth of the heap and much of its fragmentation. The key was parsed
// and matched against its certificate when it was loaded, so parsing it again
// cannot fail in practice; if it did, the handshake fails with the error.
type deferredKey struct {
	der  []byte
	once sync.Once
	key  crypto.Signer
	err  error
}

// String keeps the key out of anything printed with fmt.
func (k *deferredKey) String() string { return "private key (not shown)" }

func (k *deferredKey) load() (crypto.Signer, error) {
	k.once.Do(func() {
		parsed, err := parseKeyDER("PRIVATE KEY", k.der)
		if err == nil {
			k.key, err = asSigner(parsed)
		}
		k.err = err
		k.der = nil
	})
	return k.key, k.err
}

// Public returns the public key, or nil if the key cannot be parsed.
func (k *deferredKey) Public() crypto.PublicKey {
	key, err := k.load()
	if err != nil {
		return nil
	}
	return key.Public()
}

// Sign signs with the parsed key.
func (k *deferredKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	key, err := k.load()
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return key.Sign(rand, digest, opts)
}

// decodeKey turns a PEM private key block into a signer, decrypting it with pass
// when it is encrypted. noPass is the fix to suggest when pass is empty but needed.
func decodeKey(block *pem.Block, pass []byte, noPass string) (*privateKey, error) {
	if err := unsupportedLabel(block.Type); err != nil {
		return nil, err
	}
	encrypted := block.Type == "ENCRYPTED PRIVATE KEY" || isLegacyEncrypted(block)
	if encrypted && len(pass) == 0 {
		return nil, errorf(ErrPassphraseRequired,
			"the private key is encrypted and no passphrase was given; %s", noPass)
	}
	var (
		key any
		der []byte
		err error
	)
	switch {
	case block.Type == "ENCRYPTED PRIVATE KEY":
		key, err = decryptPKCS8(block.Bytes, pass)
	case encrypted:
		key, err = decryptLegacy(block, pass)
	default:
		key, err = parseKeyDER(block.Type, block.Bytes)
		der = bytes.Clone(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	signer, err := asSigner(key)
	if err != nil {
		return nil, err
	}
	return &privateKey{signer: signer, encrypted: encrypted, der: der}, nil
}

// unsupportedLabel recognises key formats that are known but not supported.
func unsupportedLabel(label string) error {
	switch label {
	case "DSA PRIVATE KEY":
		return errorf(ErrUnsupportedKey, "DSA keys are not supported; use an RSA, ECDSA "+
			"(P-256, P-384, P-521) or Ed25519 key")
	case "OPENSSH PRIVATE KEY":
		return errorf(ErrUnsupportedKey, "the OpenSSH key format is not supported; convert "+
			"the key with `ssh-keygen -p -m PKCS8 -f FILE`")
	}
	return nil
}

// parseKeyDER parses an unencrypted key. The PEM label is only a hint: labels are
// often edited by hand, so every supported encoding is tried.
func parseKeyDER(label string, der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	} else if alg, ok := pkcs8Algorithm(der); ok {
		return nil, pkcs8KeyError(alg, err)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	} else if curve, ok := sec1Curve(der); ok && curveName(curve) == "" {
		return nil, unsupportedCurve(curve)
	}
	return nil, errorf(ErrBadKey, "the %q block is not a PKCS#1, PKCS#8 or SEC1 key; "+
		"export the key again in PEM form", label)
}

var (
	oidRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidDSA     = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidEC      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidEd448   = asn1.ObjectIdentifier{1, 3, 101, 113}
	oidX448    = asn1.ObjectIdentifier{1, 3, 101, 111}

	oidP224 = asn1.ObjectIdentifier{1, 3, 132, 0, 33}
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// pkcs8Outer is the part of a PKCS#8 PrivateKeyInfo that names the algorithm.
type pkcs8Outer struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

func pkcs8Algorithm(der []byte) (pkix.AlgorithmIdentifier, bool) {
	var p pkcs8Outer
	if _, err := asn1.Unmarshal(der, &p); err != nil {
		return pkix.AlgorithmIdentifier{}, false
	}
	return p.Algorithm, true
}

// pkcs8KeyError explains why a well-formed PKCS#8 key could not be used.
func pkcs8KeyError(alg pkix.AlgorithmIdentifier, err error) error {
	oid := alg.Algorithm
	switch {
	case oid.Equal(oidEC):
		var curve asn1.ObjectIdentifier
		if _, e := asn1.Unmarshal(alg.Parameters.FullBytes, &curve); e == nil &&
			curveName(curve) == "" {
			return unsupportedCurve(curve)
		}
	case oid.Equal(oidRSA), oid.Equal(oidEd25519):
	default:
		return errorf(ErrUnsupportedKey, "%s keys are not supported; use an RSA, ECDSA "+
			"(P-256, P-384, P-521) or Ed25519 key", algorithmName(oid))
	}
	return errorf(ErrBadKey, "the PKCS#8 key cannot be parsed (%v); export it again", err)
}

func algorithmName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidDSA):
		return "DSA"
	case oid.Equal(oidRSAPSS):
		return "RSA-PSS"
	case oid.Equal(oidEd448):
		return "Ed448"
	case oid.Equal(oidX448):
		return "X448"
	}
	return "algorithm " + oid.String()
}

// sec1Key is the part of a SEC1 ECPrivateKey that names the curve.
type sec1Key struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
}

func sec1Curve(der []byte) (asn1.ObjectIdentifier, bool) {
	var k sec1Key
	if _, err := asn1.Unmarshal(der, &k); err != nil || len(k.Curve) == 0 {
		return nil, false
	}
	return k.Curve, true
}

func curveName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidP224):
		return "P-224"
	case oid.Equal(oidP256):
		return "P-256"
	case oid.Equal(oidP384):
		return "P-384"
	case oid.Equal(oidP521):
		return "P-521"
	}
	return ""
}

func unsupportedCurve(oid asn1.ObjectIdentifier) error {
	return errorf(ErrUnsupportedKey, "the ECDSA key uses curve %s, which is not supported; "+
		"use P-256, P-384 or P-521", oid)
}

// asSigner accepts the key types a TLS 1.2/1.3 client can sign a handshake with.
func asSigner(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P224() {
			return nil, errorf(ErrUnsupportedKey, "ECDSA P-224 keys cannot sign TLS "+
				"handshakes; use P-256, P-384 or P-521")
		}
		return k, nil
	case *ecdh.PrivateKey:
		return nil, errorf(ErrUnsupportedKey, "%s keys can only agree on secrets, not sign; "+
			"a client certificate needs an RSA, ECDSA or Ed25519 key", k.Curve())
	}
	return nil, errorf(ErrUnsupportedKey, "%T keys are not supported; use an RSA, ECDSA or "+
		"Ed25519 key", key)
}

// keyType describes a public key as "RSA 2048", "ECDSA P-256" or "Ed25519".
func keyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); bits {
		case 2048:
			return "RSA 2048" // the common sizes without an allocation each
		case 3072:
			return "RSA 3072"
		case 4096:
			return "RSA 4096"
		default:
			return fmt.Sprintf("RSA %d", bits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSA P-256"
		case elliptic.P384():
			return "ECDSA P-384"
		case elliptic.P521():
			return "ECDSA P-521"
		}
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// SameKey reports whether a certificate's public key is the public half of key.
func SameKey(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}
