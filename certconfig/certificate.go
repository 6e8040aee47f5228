package certconfig

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BuildCertificate reads and checks everything one [[certificate]] names: the
// certificate and its chain, the private key (decrypting it), the CA certificates
// and the upstream's CAs. Relative paths start at dir; source is SourceConfig or
// SourceAPI. Every error is a *FieldError naming the certificate and the field, and
// never contains PEM text, key bytes or passphrases. Expired or not yet valid
// certificates load, with a warning.
func BuildCertificate(cc CertificateConfig, dir, source string) (*Certificate, error) {
	return buildCertificate(cc, dir, source, time.Now(), nil, nil)
}

// buildCertificate builds one certificate; files, when set, shares file reads with
// the other certificates of the same load. prev, when set, is the certificate of the
// same name built before: if cc and every file it names are as they were then,
// prev is returned again (with its warnings brought up to now) instead of a new
// build.
func buildCertificate(cc CertificateConfig, dir, source string,
	now time.Time, files *fileCache, prev *Certificate) (*Certificate, error) {
	if err := checkCertName(cc.Name); err != nil {
		return nil, &FieldError{Certificate: cc.Name, Field: "name", Err: err}
	}
	if errs := checkCertificateConfig(cc); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	b := &builder{cc: cc, dir: dir, source: source, now: now, cache: files}
	var sum [32]byte
	summed := false
	if files != nil { // a load of the config file, as opposed to an API change
		sum, summed = b.inputSum()
	}
	if summed && prev != nil && prev.inputs == sum {
		return prev.at(now), nil
	}
	c, err := b.build()
	if err == nil && summed {
		c.inputs = sum
	}
	return c, err
}

// at returns c with its warnings as they stand at now: c itself if they did not
// change since it was built, or a copy.
func (c *Certificate) at(now time.Time) *Certificate {
	w := c.WarningsAt(now)
	if slices.Equal(w, c.Warnings) {
		return c
	}
	cp := *c
	cp.Warnings = w
	return &cp
}

// inputSum hashes everything a certificate is built from: its settings, where it
// was loaded from, the content of every file it names, and the permissions the
// warnings look at. ok is false if a file cannot be read (the build then says why).
func (b *builder) inputSum() (sum [32]byte, ok bool) {
	b.modes = map[string]os.FileMode{}
	settings, err := json.Marshal(b.cc)
	if err != nil {
		return sum, false
	}
	h := sha256.New()
	writePart(h, settings)
	writePart(h, []byte(b.dir))
	writePart(h, []byte(b.source))
	file := func(name string, private bool) bool {
		path, data, err := b.cache.read(resolvePath(b.dir, name))
		if err != nil {
			return false
		}
		writePart(h, []byte(path))
		writePart(h, data)
		if private {
			fi, err := os.Stat(path)
			if err != nil {
				return false
			}
			writePart(h, []byte{byte(fi.Mode().Perm() & 0o077)})
			b.modes[path] = fi.Mode() // the warnings then use what was hashed
		}
		return true
	}
	for _, in := range inputsOf(b.cc) {
		if in.file != "" && !file(in.file, in.fileKey == "key_file") {
			return sum, false
		}
	}
	if b.cc.PassphraseFile != "" && !file(b.cc.PassphraseFile, true) {
		return sum, false
	}
	if b.cc.PassphraseEnv != "" {
		v, set := os.LookupEnv(b.cc.PassphraseEnv)
		writePart(h, []byte(v))
		writePart(h, []byte(strconv.FormatBool(set)))
	}
	h.Sum(sum[:0])
	return sum, true
}

// builder gathers one certificate's parts, the files read and the warnings.
type builder struct {
	cc       CertificateConfig
	dir      string
	source   string
	now      time.Time
	cache    *fileCache
	files    []string
	warnings []string
	// modes are the modes of secret files as inputSum saw them.
	modes map[string]os.FileMode
}

// parts is what the fields of a certificate hold once read and parsed.
type parts struct {
	certs     []*x509.Certificate
	key       *privateKey
	keyField  string
	cas       []*x509.Certificate
	serverCAs []*x509.Certificate
}

func (b *builder) build() (*Certificate, error) {
	p, err := b.readParts()
	if err != nil {
		return nil, err
	}
	leaf, others, err := b.pickLeaf(p)
	if err != nil {
		return nil, err
	}
	chain, complete := orderChain(leaf, append(others, p.cas...))
	c := &Certificate{
		Name:               b.cc.Name,
		Enabled:            b.cc.Enabled == nil || *b.cc.Enabled,
		Source:             b.source,
		TLS:                tlsCertificate(leaf, chain, p.key),
		Subject:            leaf.Subject.String(),
		NotBefore:          leaf.NotBefore,
		NotAfter:           leaf.NotAfter,
		Chain:              chain,
		ChainComplete:      complete,
		KeyType:            keyType(leaf.PublicKey),
		Fingerprint:        fingerprint(leaf),
		ServerName:         b.cc.ServerName,
		InsecureSkipVerify: b.cc.InsecureSkipVerify,
	}
	setServerCAs(c, p.serverCAs)
	if c.ID, err = certificateID(c, p.key.signer, p.serverCAs); err != nil {
		return nil, b.fail(p.keyField, err)
	}
	c.otherWarnings = append(b.warnings, b.certWarnings(c, leaf)...)
	c.Warnings = c.WarningsAt(b.now)
	c.Files = b.files
	return c, nil
}

// readParts reads every field, reporting the problems of all fields at once.
func (b *builder) readParts() (*parts, error) {
	var p parts
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	p.certs, err = b.readCerts(certInput(b.cc))
	collect(err)
	p.key, p.keyField, err = b.readKey()
	collect(err)
	p.cas, err = b.readCerts(caInput(b.cc))
	collect(err)
	p.serverCAs, err = b.readServerCAs()
	collect(err)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &p, nil
}

func (b *builder) fail(field string, err error) error {
	return &FieldError{Certificate: b.cc.Name, Field: field, Err: err}
}

// read returns the content of in; an unset optional input gives nil material.
func (b *builder) read(in input) (*material, error) {
	if !in.isSet() {
		return nil, nil
	}
	m, err := readInput(in, b.dir, b.cache)
	if err != nil {
		return nil, b.fail(m.field, err)
	}
	if m.path != "" {
		b.files = append(b.files, m.path)
	}
	return &m, nil
}

func (b *builder) readCerts(in input) ([]*x509.Certificate, error) {
	m, err := b.read(in)
	if m == nil || err != nil {
		return nil, err
	}
	blocks, err := decodePEM(*m)
	if err != nil {
		return nil, b.fail(m.field, err)
	}
	certs, err := parseCertBlocks(blocks)
	if err != nil {
		return nil, b.fail(m.field, err)
	}
	return certs, nil
}

func (b *builder) readKey() (*privateKey, string, error) {
	m, err := b.read(keyInput(b.cc))
	if err != nil {
		return nil, "", err
	}
	block, err := b.keyBlock(*m)
	if err != nil {
		return nil, m.field, err
	}
	pass, passField, err := b.passphrase()
	if err != nil {
		return nil, m.field, err
	}
	key, err := decodeKey(block, pass, b.noPassphraseHint(passField))
	if err != nil {
		return nil, m.field, b.fail(m.field, err)
	}
	if !key.encrypted && len(pass) > 0 {
		b.warn("%s is set but the private key is not encrypted; remove it", passField)
	}
	if m.path != "" {
		b.checkPrivate("key file", m.path)
	}
	return key, m.field, nil
}

func (b *builder) keyBlock(m material) (*pem.Block, error) {
	blocks, err := decodePEM(m)
	if err != nil {
		return nil, b.fail(m.field, err)
	}
	block, err := pickKeyBlock(blocks)
	if err != nil {
		return nil, b.fail(m.field, err)
	}
	return block, nil
}

// passphrase returns the passphrase and the field it came from, if any.
func (b *builder) passphrase() ([]byte, string, error) {
	switch cc := b.cc; {
	case cc.Passphrase != "":
		return []byte(cc.Passphrase), "passphrase", nil
	case cc.PassphraseFile != "":
		return b.passphraseFile()
	case cc.PassphraseEnv != "":
		v, ok := os.LookupEnv(cc.PassphraseEnv)
		if !ok {
			return nil, "", b.fail("passphrase_env", errorf(ErrEnvUnset, "environment "+
				"variable %q is not set; set it for mtlsproxy or fix the name", cc.PassphraseEnv))
		}
		return []byte(v), "passphrase_env", nil
	}
	return nil, "", nil
}

func (b *builder) passphraseFile() ([]byte, string, error) {
	// Through the load's cache, so that the passphrase used is the one inputSum hashed.
	path, data, err := b.cache.read(resolvePath(b.dir, b.cc.PassphraseFile))
	if err != nil {
		return nil, "", b.fail("passphrase_file", readError(path, err))
	}
	b.files = append(b.files, path)
	b.checkPrivate("passphrase file", path)
	return []byte(strings.TrimRight(string(data), "\r\n")), "passphrase_file", nil
}

func (b *builder) noPassphraseHint(passField string) string {
	switch {
	case passField != "":
		return passField + " gives an empty passphrase; put the passphrase there"
	case b.source == SourceAPI:
		return "send the passphrase with the private key"
	}
	return "set passphrase_file or passphrase_env"
}

// checkPrivate warns when a secret file can be read by other users.
func (b *builder) checkPrivate(what, path string) {
	if runtime.GOOS == "windows" {
		return
	}
	mode, seen := b.modes[path]
	if !seen {
		fi, err := os.Stat(path)
		if err != nil {
			return
		}
		mode = fi.Mode()
	}
	if mode.Perm()&0o077 != 0 {
		b.warn("%s %s is readable by group or others; chmod 600 it", what, path)
	}
}

func (b *builder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

func (b *builder) readServerCAs() ([]*x509.Certificate, error) {
	m, err := b.read(serverCAInput(b.cc))
	if m == nil || err != nil {
		return nil, err
	}
	blocks, err := decodePEM(*m)
	if err == nil {
		var certs []*x509.Certificate
		if certs, err = parseCertBlocks(blocks); err == nil {
			return certs, nil
		}
	}
	return nil, b.fail(m.field, errorf(ErrBadServerCA, "%w; it must hold the PEM "+
		"certificates of the CAs that issued the upstream's certificate", err))
}

// pickLeaf finds the certificate of the private key among those of the cert field.
// The others are returned, without duplicates, to become the chain.
func (b *builder) pickLeaf(p *parts) (*x509.Certificate, []*x509.Certificate, error) {
	var leaf *x509.Certificate
	var others []*x509.Certificate
	matches := 0
	for _, c := range dedupe(p.certs) {
		switch {
		case !SameKey(c, p.key.signer):
			others = append(others, c)
		case leaf == nil || c.NotAfter.After(leaf.NotAfter):
			leaf = c
			matches++
		default:
			matches++
		}
	}
	if leaf == nil {
		return nil, nil, b.fail(p.keyField, b.mismatch(p))
	}
	if matches > 1 {
		b.warn("%s holds %d certificates for this key; using the one valid until %s",
			certInput(b.cc).usedKey(), matches, FormatDate(leaf.NotAfter))
	}
	return leaf, others, nil
}

func (b *builder) mismatch(p *parts) error {
	certField := certInput(b.cc).usedKey()
	for _, c := range p.cas {
		if SameKey(c, p.key.signer) {
			return errorf(ErrKeyMismatch, "the private key belongs to a certificate in %s, "+
				"not to any in %s; move that certificate to %s", caInput(b.cc).usedKey(),
				certField, certField)
		}
	}
	hint := "use the key that belongs to this certificate"
	if p.key.encrypted {
		hint += ", and check the passphrase"
	}
	return errorf(ErrKeyMismatch, "the private key (%s) does not match the certificate in %s "+
		"(%s key); %s", keyType(p.key.signer.Public()), certField,
		keyType(p.certs[0].PublicKey), hint)
}

// dedupe drops repeated certificates, keeping the first of each.
func dedupe(certs []*x509.Certificate) []*x509.Certificate {
	seen := make(map[string]bool, len(certs))
	var out []*x509.Certificate
	for _, c := range certs {
		if !seen[string(c.Raw)] {
			seen[string(c.Raw)] = true
			out = append(out, c)
		}
	}
	return out
}

func tlsCertificate(leaf *x509.Certificate, chain []*x509.Certificate,
	key *privateKey) tls.Certificate {
	der := [][]byte{leaf.Raw}
	for _, c := range chain {
		der = append(der, c.Raw)
	}
	return tls.Certificate{Certificate: der, PrivateKey: key.presented()}
}

func setServerCAs(c *Certificate, cas []*x509.Certificate) {
	if len(cas) == 0 {
		return
	}
	shared := sharedServerCAs(cas)
	c.ServerCAs, c.ServerCAPEM = shared.pool, shared.pem
}

// fingerprint is the SHA-256 of the DER, in ColonHex.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return ColonHex(sum[:])
}

// ColonHex writes b as lowercase hex pairs joined by colons ("0a:1b:2c"), the way
// most tools show fingerprints and serial numbers.
func ColonHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 3*len(b))
	for i, x := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[x>>4], digits[x&0x0f])
	}
	return string(out)
}
