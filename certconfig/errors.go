package certconfig

import (
	"errors"
	"fmt"
)

// Sentinel errors of certificate loading. Every error returned while building a
// certificate wraps one of them inside a *FieldError, so callers (the admin API,
// the check command) can tell the cases apart with errors.Is.
var (
	// ErrUnreadable means a file named in the configuration could not be read.
	ErrUnreadable = errors.New("cannot read")
	// ErrNoPEM means a field holds no PEM block at all.
	ErrNoPEM = errors.New("no PEM block found")
	// ErrDamagedPEM means a PEM block starts but cannot be decoded.
	ErrDamagedPEM = errors.New("damaged PEM block")
	// ErrNoCertificate means the certificate field holds no CERTIFICATE block.
	ErrNoCertificate = errors.New("no certificate found")
	// ErrBadCertificate means a CERTIFICATE block is not a valid X.509 certificate.
	ErrBadCertificate = errors.New("invalid certificate")
	// ErrMisplacedBlock means a field holds a block that belongs in another field,
	// such as a private key in cert_file.
	ErrMisplacedBlock = errors.New("wrong kind of PEM block")
	// ErrNoKey means the key field holds no private key block.
	ErrNoKey = errors.New("no private key found")
	// ErrBadKey means a private key block cannot be parsed.
	ErrBadKey = errors.New("invalid private key")
	// ErrKeyMismatch means the private key belongs to none of the certificates given.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrPassphraseRequired means the key is encrypted and no passphrase was given.
	ErrPassphraseRequired = errors.New("private key is encrypted and no passphrase was given")
	// ErrWrongPassphrase means the passphrase does not decrypt the key.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrUnsupportedEncryption means the key is encrypted with a scheme that cannot
	// be decrypted here.
	ErrUnsupportedEncryption = errors.New("unsupported key encryption")
	// ErrUnsupportedKey means the key is of a type TLS clients cannot use here.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrNotSet means a required field has neither its file nor its inline form.
	ErrNotSet = errors.New("not set")
	// ErrBothSet means two fields that exclude each other are both set.
	ErrBothSet = errors.New("both set")
	// ErrEnvUnset means passphrase_env names a variable that is not set.
	ErrEnvUnset = errors.New("environment variable is not set")
	// ErrBadServerCA means server_ca_file or server_ca_pem holds no usable
	// certificate.
	ErrBadServerCA = errors.New("invalid server CA")
	// ErrBadName means a certificate name is empty, too long or has characters
	// outside [A-Za-z0-9._-].
	ErrBadName = errors.New("invalid certificate name")
	// ErrUnknownCertificate means a route names a certificate that is not defined.
	ErrUnknownCertificate = errors.New("certificate is not defined")
	// ErrDuplicateName means two certificates have the same name.
	ErrDuplicateName = errors.New("duplicate certificate name")
	// ErrUnknownKey means the TOML file has a key the schema does not know.
	ErrUnknownKey = errors.New("unknown key")
)

// FieldError is a problem with one field of one certificate. Its text reads
// `certificate "acme": key_file: ...`, or `certificate "acme": ...` when the
// problem concerns several fields at once.
type FieldError struct {
	Certificate string // the certificate's name
	Field       string // the TOML key, such as "key_file"; may be empty
	Err         error
}

// Error gives the certificate, the field and the problem with its fix.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("certificate %q: %v", e.Certificate, e.Err)
	}
	return fmt.Sprintf("certificate %q: %s: %v", e.Certificate, e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// kindError carries its own wording while still matching a sentinel with errors.Is,
// so that messages read naturally instead of starting with the sentinel's text.
type kindError struct {
	err  error // the message, possibly wrapping a cause such as fs.ErrNotExist
	kind error // the sentinel
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// errorf formats a message like fmt.Errorf (so %w may wrap a cause) and marks it
// as being of the given kind.
func errorf(kind error, format string, args ...any) error {
	return &kindError{err: fmt.Errorf(format, args...), kind: kind}
}
