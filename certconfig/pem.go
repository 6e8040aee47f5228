package certconfig

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"sync"
)

// PEM markers named in error messages.
const (
	certMarker = "-----BEGIN CERTIFICATE-----"
	keyMarker  = "-----BEGIN PRIVATE KEY----- (or RSA, EC or ENCRYPTED PRIVATE KEY)"
)

// input is one PEM field of a certificate, given either as a file or inline.
type input struct {
	fileKey, pemKey string // TOML keys, such as "cert_file" and "cert_pem"
	file, text      string
	required        bool
	what            string // what the field holds, for messages
	marker          string // the BEGIN line the field must contain
}

func (in input) isSet() bool { return in.file != "" || in.text != "" }

// usedKey is the TOML key the input is given in: the inline one when it has text.
func (in input) usedKey() string {
	if in.text != "" {
		return in.pemKey
	}
	return in.fileKey
}

func certInput(cc CertificateConfig) input {
	return input{"cert_file", "cert_pem", cc.CertFile, cc.CertPEM, true,
		"client certificate", certMarker}
}

func keyInput(cc CertificateConfig) input {
	return input{"key_file", "key_pem", cc.KeyFile, cc.KeyPEM, true,
		"private key", keyMarker}
}

func caInput(cc CertificateConfig) input {
	return input{"ca_file", "ca_pem", cc.CAFile, cc.CAPEM, false,
		"CA certificates", certMarker}
}

func serverCAInput(cc CertificateConfig) input {
	return input{"server_ca_file", "server_ca_pem", cc.ServerCAFile, cc.ServerCAPEM, false,
		"upstream's CA certificates", certMarker}
}

func inputsOf(cc CertificateConfig) []input {
	return []input{certInput(cc), keyInput(cc), caInput(cc), serverCAInput(cc)}
}

// material is the content of an input once read.
type material struct {
	field  string // the TOML key it came from
	path   string // absolute path of the file; empty for inline text
	marker string
	data   []byte
}

// readInput reads the file of in, resolved against dir, or takes its inline text.
func readInput(in input, dir string, files *fileCache) (material, error) {
	if in.text != "" {
		return material{field: in.pemKey, marker: in.marker, data: []byte(in.text)}, nil
	}
	path, data, err := files.read(resolvePath(dir, in.file))
	if err != nil {
		return material{field: in.fileKey, path: path}, readError(path, err)
	}
	return material{field: in.fileKey, path: path, marker: in.marker, data: data}, nil
}

// fileCache reads each file once per load: thousands of certificates often name
// the same chain and server CA files. A nil cache reads every time.
type fileCache struct{ m sync.Map } // path -> *cachedFile

type cachedFile struct {
	path string
	once sync.Once
	data []byte
	err  error
}

// read returns the content of the file at path. The path it returns is equal to
// path and, with a cache, the same string for every certificate naming the file,
// so that the file lists of thousands of certificates share it.
func (fc *fileCache) read(path string) (string, []byte, error) {
	if fc == nil {
		data, err := os.ReadFile(path)
		return path, data, err
	}
	v, _ := fc.m.LoadOrStore(path, &cachedFile{path: path})
	f := v.(*cachedFile)
	f.once.Do(func() { f.data, f.err = os.ReadFile(path) })
	return f.path, f.data, f.err
}

func readError(path string, err error) error {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err
	}
	hint := "check the path; relative paths start at the config file's folder"
	if errors.Is(err, fs.ErrPermission) {
		hint = "let the user running mtlsproxy read it"
	}
	return errorf(ErrUnreadable, "cannot read %s: %w; %s", path, cause, hint)
}

var (
	utf8BOM  = []byte("\xef\xbb\xbf")
	pemBegin = []byte("-----BEGIN ")
	// pemBoundary finds BEGIN and END lines, also where a form or a chat tool has
	// joined the lines of a PEM block with spaces.
	pemBoundary = regexp.MustCompile(`[ \t]*(-----(?:BEGIN|END) [A-Z0-9 ]+-----)[ \t]*`)
)

// cleanPEM undoes what copying and pasting does to PEM text: a byte order mark,
// CRLF or CR line ends, indentation (as inside a TOML multi-line string), trailing
// blanks, and BEGIN/END lines run together with the base64 body.
func cleanPEM(data []byte) []byte {
	if isCleanPEM(data) {
		return data // the usual case; the regular expression below is slow
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	data = pemBoundary.ReplaceAll(data, []byte("\n$1\n"))
	var out [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		// A blank line after BEGIN would end the (legacy) headers before they start.
		if len(line) == 0 && len(out) > 0 && bytes.HasPrefix(out[len(out)-1], pemBegin) {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}

// isCleanPEM reports whether data needs none of cleanPEM's repairs: no byte order
// mark, no CR, no blank at either end of a line, BEGIN and END lines on their own,
// and no blank line right after a BEGIN line.
func isCleanPEM(data []byte) bool {
	if bytes.HasPrefix(data, utf8BOM) || bytes.IndexByte(data, '\r') >= 0 {
		return false
	}
	afterBegin := false
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if len(line) > 0 && (isBlank(line[0]) || isBlank(line[len(line)-1])) {
			return false
		}
		if len(line) == 0 && afterBegin {
			return false
		}
		boundary := bytes.Contains(line, pemBegin) ||
			bytes.Contains(line, []byte("-----END "))
		if boundary && (!bytes.HasPrefix(line, []byte("-----")) ||
			!bytes.HasSuffix(line, []byte("-----")) || bytes.Count(line, []byte("-----")) != 2) {
			return false
		}
		afterBegin = bytes.HasPrefix(line, pemBegin)
	}
	return true
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' }

// decodePEM returns every PEM block of m, ignoring text around and between blocks.
// A block that starts but cannot be decoded is an error rather than silently lost.
func decodePEM(m material) ([]*pem.Block, error) {
	data := cleanPEM(m.data)
	var blocks []*pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	begins := countBegins(data)
	switch {
	case begins > len(blocks):
		return nil, errorf(ErrDamagedPEM, "%d of %d PEM blocks in %s cannot be decoded "+
			"(broken base64, or the END line missing or not matching BEGIN); paste them again",
			begins-len(blocks), begins, m.where())
	case len(blocks) == 0:
		return nil, errorf(ErrNoPEM, "no PEM block found%s; %s must contain %s%s",
			m.in(), m.subject(), m.marker, derHint(m.data))
	}
	return blocks, nil
}

func countBegins(data []byte) int {
	n := 0
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if bytes.HasPrefix(line, pemBegin) {
			n++
		}
	}
	return n
}

// derHint recognises binary DER, which starts with an ASN.1 SEQUENCE.
func derHint(data []byte) string {
	if len(data) > 1 && data[0] == 0x30 && data[1] >= 0x80 {
		return " (this looks like binary DER; convert it to PEM with openssl)"
	}
	return ""
}

func (m material) where() string {
	if m.path != "" {
		return m.path
	}
	return "the text"
}

func (m material) in() string {
	if m.path != "" {
		return " in " + m.path
	}
	return ""
}

func (m material) subject() string {
	if m.path != "" {
		return "the file"
	}
	return "the text"
}

// isKeyBlock reports whether a PEM block type is some kind of private key.
func isKeyBlock(typ string) bool {
	return strings.HasSuffix(typ, "PRIVATE KEY") || typ == "EC PARAMETERS"
}

// parseCertBlocks parses a field that may hold only certificates.
func parseCertBlocks(blocks []*pem.Block) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	other := ""
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			if other == "" {
				other = misplacedInCertField(b.Type)
			}
			continue
		}
		c, err := parseCertificate(b.Bytes)
		if err != nil {
			return nil, errorf(ErrBadCertificate,
				"PEM block %d is not a valid X.509 certificate (%v); paste it again", i+1, err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) == 0:
		return nil, errorf(ErrNoCertificate, "no certificate found; it holds %s", other)
	case other != "":
		return nil, errorf(ErrMisplacedBlock, "besides certificates it holds %s", other)
	}
	return certs, nil
}

// misplacedInCertField says what a non-certificate block is and where it belongs.
func misplacedInCertField(typ string) string {
	switch {
	case isKeyBlock(typ):
		return fmt.Sprintf("a private key (%s); put it in key_file or key_pem instead", typ)
	case strings.HasSuffix(typ, "CERTIFICATE REQUEST"):
		return "a certificate request; use the certificate your CA issued for it instead"
	}
	return fmt.Sprintf("a %q block; only CERTIFICATE blocks belong here", typ)
}

func blockTypes(blocks []*pem.Block) string {
	seen := map[string]bool{}
	var types []string
	for _, b := range blocks {
		if !seen[b.Type] {
			seen[b.Type] = true
			types = append(types, fmt.Sprintf("%q", b.Type))
		}
	}
	return strings.Join(types, ", ")
}

// pickKeyBlock finds the one private key block of the key field, skipping the EC
// PARAMETERS block that `openssl ecparam -genkey` writes in front of the key.
func pickKeyBlock(blocks []*pem.Block) (*pem.Block, error) {
	var keys []*pem.Block
	for _, b := range blocks {
		switch {
		case b.Type == "EC PARAMETERS":
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keys = append(keys, b)
		case b.Type == "CERTIFICATE":
			return nil, errorf(ErrMisplacedBlock, "holds a certificate; put it in cert_file or "+
				"cert_pem, and only the private key here")
		default:
			return nil, errorf(ErrMisplacedBlock, "holds a %q block; only the private key "+
				"belongs here", b.Type)
		}
	}
	switch len(keys) {
	case 0:
		return nil, errorf(ErrNoKey, "no private key found, only %s; it must contain %s",
			blockTypes(blocks), keyMarker)
	case 1:
		return keys[0], nil
	}
	return nil, errorf(ErrBadKey, "holds %d private keys; keep only the one that belongs "+
		"to the certificate", len(keys))
}
