package certconfig

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"strings"

	"github.com/youmark/pkcs8"
)

// Work factors beyond these are refused: a key sent through the admin API must not
// be able to make a decryption run for minutes or take gigabytes of memory.
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptMemory     = 256 << 20 // bytes, about 128 * N * r
)

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
)

// pbes2Ciphers are the PBES2 ciphers github.com/youmark/pkcs8 decrypts correctly,
// with their block size. It also registers AES-GCM but decrypts it as CBC, which
// would turn a correct passphrase into a "wrong passphrase" error.
var pbes2Ciphers = map[string]int{
	"2.16.840.1.101.3.4.1.2":  16, // aes-128-cbc
	"2.16.840.1.101.3.4.1.22": 16, // aes-192-cbc
	"2.16.840.1.101.3.4.1.42": 16, // aes-256-cbc
	"1.2.840.113549.3.7":      8,  // des-ede3-cbc
}

var cipherNames = map[string]string{
	"2.16.840.1.101.3.4.1.6":  "AES-128-GCM",
	"2.16.840.1.101.3.4.1.26": "AES-192-GCM",
	"2.16.840.1.101.3.4.1.46": "AES-256-GCM",
	"1.3.14.3.2.7":            "DES-CBC",
	"1.2.840.113549.3.2":      "RC2-CBC",
}

// pbes1Names are the password-based schemes older than PBES2 (PKCS#5 v1.5 and
// PKCS#12), still written by `openssl pkcs8 -v1` and some Java tools.
var pbes1Names = map[string]string{
	"1.2.840.113549.1.5.1":    "pbeWithMD2AndDES-CBC",
	"1.2.840.113549.1.5.3":    "pbeWithMD5AndDES-CBC",
	"1.2.840.113549.1.5.4":    "pbeWithMD2AndRC2-CBC",
	"1.2.840.113549.1.5.6":    "pbeWithMD5AndRC2-CBC",
	"1.2.840.113549.1.5.10":   "pbeWithSHA1AndDES-CBC",
	"1.2.840.113549.1.5.11":   "pbeWithSHA1AndRC2-CBC",
	"1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
	"1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4",
	"1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC",
	"1.2.840.113549.1.12.1.4": "pbeWithSHAAnd2-KeyTripleDES-CBC",
	"1.2.840.113549.1.12.1.5": "pbeWithSHAAnd128BitRC2-CBC",
	"1.2.840.113549.1.12.1.6": "pbewithSHAAnd40BitRC2-CBC",
}

const reencrypt = "re-encrypt the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"

type encryptedKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Cipher pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt        []byte
	Cost        int
	BlockSize   int
	Parallelism int
	KeyLength   int `asn1:"optional"`
}

// decryptPKCS8 decrypts an "ENCRYPTED PRIVATE KEY" block. The scheme is checked
// first so that an unsupported or damaged key is not reported as a wrong passphrase,
// and so that the library never sees input it would panic on.
func decryptPKCS8(der, pass []byte) (any, error) {
	if err := checkPKCS8Encryption(der); err != nil {
		return nil, err
	}
	key, err := pkcs8.ParsePKCS8PrivateKey(der, pass)
	if err != nil {
		// With a checked scheme the only failure left is a plaintext that does not
		// parse, which is what a wrong passphrase produces.
		return nil, errorf(ErrWrongPassphrase, "wrong passphrase: the private key cannot be "+
			"decrypted with it; check the passphrase")
	}
	return key, nil
}

func checkPKCS8Encryption(der []byte) error {
	var info encryptedKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return errorf(ErrBadKey, "the encrypted private key is damaged; export it again")
	}
	alg := info.Algorithm.Algorithm
	if name, ok := pbes1Names[alg.String()]; ok {
		return errorf(ErrUnsupportedEncryption, "the private key is encrypted with %s "+
			"(PBES1), which is not supported; %s", name, reencrypt)
	}
	if !alg.Equal(oidPBES2) {
		return errorf(ErrUnsupportedEncryption, "the private key is encrypted with an unknown "+
			"scheme (OID %s); %s", alg, reencrypt)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return errorf(ErrBadKey, "the encrypted private key has damaged PBES2 parameters; "+
			"export it again")
	}
	if err := checkKDF(params.KDF); err != nil {
		return err
	}
	return checkCipher(params.Cipher, len(info.Data))
}

func checkKDF(kdf pkix.AlgorithmIdentifier) error {
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		return checkPBKDF2(kdf.Parameters.FullBytes)
	case kdf.Algorithm.Equal(oidScrypt):
		return checkScrypt(kdf.Parameters.FullBytes)
	}
	return errorf(ErrUnsupportedEncryption, "the private key uses key derivation %s, which "+
		"is not supported (PBKDF2 and scrypt are); %s", kdf.Algorithm, reencrypt)
}

func checkPBKDF2(raw []byte) error {
	var p pbkdf2Params
	if _, err := asn1.Unmarshal(raw, &p); err != nil {
		return errorf(ErrBadKey, "the encrypted private key has damaged PBKDF2 parameters")
	}
	prf := p.PRF.Algorithm
	if len(prf) != 0 && !prf.Equal(oidHMACSHA1) && !prf.Equal(oidHMACSHA256) {
		return errorf(ErrUnsupportedEncryption, "the private key uses PBKDF2 with PRF %s; "+
			"only HMAC-SHA1 and HMAC-SHA256 are supported; %s", prf, reencrypt)
	}
	if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
		return errorf(ErrUnsupportedEncryption, "the private key uses %d PBKDF2 iterations; "+
			"the limit is %d; %s", p.Iterations, maxPBKDF2Iterations, reencrypt)
	}
	return nil
}

func checkScrypt(raw []byte) error {
	var p scryptParams
	if _, err := asn1.Unmarshal(raw, &p); err != nil {
		return errorf(ErrBadKey, "the encrypted private key has damaged scrypt parameters")
	}
	ok := p.Cost > 1 && p.Cost&(p.Cost-1) == 0 && p.BlockSize > 0 && p.Parallelism > 0 &&
		int64(p.Cost)*int64(p.BlockSize) <= maxScryptMemory/128 &&
		int64(p.BlockSize)*int64(p.Parallelism) < 1<<30
	if !ok {
		return errorf(ErrUnsupportedEncryption, "the private key's scrypt parameters "+
			"(N=%d, r=%d, p=%d) are invalid or need more than %d MiB; %s",
			p.Cost, p.BlockSize, p.Parallelism, maxScryptMemory>>20, reencrypt)
	}
	return nil
}

func checkCipher(c pkix.AlgorithmIdentifier, dataLen int) error {
	block, ok := pbes2Ciphers[c.Algorithm.String()]
	if !ok {
		name := cipherNames[c.Algorithm.String()]
		if name == "" {
			name = "cipher " + c.Algorithm.String()
		}
		return errorf(ErrUnsupportedEncryption, "the private key is encrypted with %s, which "+
			"is not supported (AES-CBC and DES-EDE3-CBC are); %s", name, reencrypt)
	}
	var iv []byte
	_, err := asn1.Unmarshal(c.Parameters.FullBytes, &iv)
	if err != nil || len(iv) != block || dataLen == 0 || dataLen%block != 0 {
		return errorf(ErrBadKey, "the encrypted private key is damaged (bad IV or length); "+
			"export it again")
	}
	return nil
}

// legacyCiphers are the DEK-Info algorithms the standard library decrypts.
var legacyCiphers = map[string]bool{
	"DES-CBC": true, "DES-EDE3-CBC": true,
	"AES-128-CBC": true, "AES-192-CBC": true, "AES-256-CBC": true,
}

func isLegacyEncrypted(b *pem.Block) bool {
	return strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED")
}

// decryptLegacy decrypts an OpenSSL "Proc-Type: 4,ENCRYPTED" block. This format has
// no integrity check: a wrong passphrase is caught by the padding only most of the
// time, and otherwise yields bytes that do not parse as a key.
func decryptLegacy(b *pem.Block, pass []byte) (any, error) {
	alg, _, _ := strings.Cut(b.Headers["DEK-Info"], ",")
	if !legacyCiphers[alg] {
		return nil, errorf(ErrUnsupportedEncryption, "the private key is encrypted with %q, "+
			"which is not supported; %s", alg, reencrypt)
	}
	// x509.DecryptPEMBlock is deprecated because the format is insecure, but keys in
	// it are still issued and still in use; refusing them would leave no way to load.
	der, err := x509.DecryptPEMBlock(b, pass) //nolint:staticcheck // legacy keys must load
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, errorf(ErrWrongPassphrase, "wrong passphrase: the private key cannot be "+
			"decrypted with it; check the passphrase")
	}
	if err != nil {
		return nil, errorf(ErrBadKey, "the encrypted private key is damaged (%v); "+
			"export it again", err)
	}
	key, err := parseKeyDER(b.Type, der)
	if errors.Is(err, ErrUnsupportedKey) {
		return nil, err
	}
	if err != nil {
		return nil, errorf(ErrWrongPassphrase, "wrong passphrase: decrypting the private key "+
			"with it gives no valid key; check the passphrase")
	}
	return key, nil
}
