package certconfig

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"time"
)

// ExpiryWarning is how far ahead of its not-after date a certificate is flagged as
// expiring soon.
const ExpiryWarning = 30 * 24 * time.Hour

// FormatDate writes t the way warnings and messages show dates: "2006-01-02 15:04 UTC".
func FormatDate(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// orderChain orders the certificates to present after leaf: each is the issuer of
// the one before it as far as the links go, then the unrelated ones in the order
// given. Duplicates and copies of the leaf are dropped. complete reports whether
// the links reach a self-signed certificate or at least the leaf's issuer: servers
// keep their roots, so a leaf with its intermediates and no root is the usual,
// complete setup. Only a leaf whose issuer is missing counts as incomplete.
func orderChain(leaf *x509.Certificate,
	others []*x509.Certificate) (chain []*x509.Certificate, complete bool) {
	rest := slices.DeleteFunc(dedupe(others), func(c *x509.Certificate) bool {
		return bytes.Equal(c.Raw, leaf.Raw)
	})
	for cur := leaf; ; {
		if IsSelfSigned(cur) {
			complete = true
			break
		}
		i := slices.IndexFunc(rest, func(c *x509.Certificate) bool { return issuedBy(cur, c) })
		if i < 0 {
			break
		}
		cur = rest[i]
		chain = append(chain, cur)
		rest = slices.Delete(rest, i, i+1)
	}
	return append(chain, rest...), complete || len(chain) > 0
}

// issuedBy reports whether parent issued child, by name and, where both carry
// them, by key identifier. Signatures are not checked: ordering what the operator
// gave is not the server's verification, and checking one signature per
// certificate made reloads of thousands of certificates several times slower.
func issuedBy(child, parent *x509.Certificate) bool {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	if len(child.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 {
		return bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId)
	}
	return true
}

// IsSelfSigned reports whether c names itself as issuer and its own key verifies
// its signature. CheckSignatureFrom is not used: it refuses a parent that is not a
// CA, and self-signed leaves usually are not.
func IsSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// certWarnings are the notes about a built certificate an operator should see,
// apart from those about the leaf's dates.
func (b *builder) certWarnings(c *Certificate, leaf *x509.Certificate) []string {
	var w []string
	if !c.ChainComplete { // orderChain counts a self-signed leaf as complete
		w = append(w, "chain does not reach a root: the leaf's issuer is not configured; "+
			"if it is an intermediate CA, add it (and any above it) to ca_file")
	}
	w = append(w, keyWarnings(leaf)...)
	return append(w, b.verifyWarnings()...)
}

func validityWarnings(what string, notBefore, notAfter, now time.Time) []string {
	switch {
	case now.After(notAfter):
		return []string{fmt.Sprintf("%s expired on %s; replace it", what,
			FormatDate(notAfter))}
	case now.Before(notBefore):
		return []string{fmt.Sprintf("%s is not valid until %s; check its dates or wait",
			what, FormatDate(notBefore))}
	case notAfter.Sub(now) < ExpiryWarning:
		return []string{fmt.Sprintf("%s expires on %s, %s; renew it", what,
			FormatDate(notAfter), inDays(notAfter.Sub(now)))}
	}
	return nil
}

// inDays rounds a positive duration up to whole days.
func inDays(d time.Duration) string {
	days := int((d + 24*time.Hour - 1) / (24 * time.Hour))
	if days == 1 {
		return "within a day"
	}
	return fmt.Sprintf("in %d days", days)
}

func keyWarnings(leaf *x509.Certificate) []string {
	var w []string
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		w = append(w, fmt.Sprintf("the RSA key has only %d bits; many servers refuse "+
			"less than 2048", k.N.BitLen()))
	}
	eku := leaf.ExtKeyUsage
	if len(eku) > 0 && !slices.Contains(eku, x509.ExtKeyUsageClientAuth) &&
		!slices.Contains(eku, x509.ExtKeyUsageAny) {
		w = append(w, "the certificate is not issued for client authentication (its extended "+
			"key usage lacks clientAuth); servers that check it will refuse it")
	}
	return w
}

func (b *builder) verifyWarnings() []string {
	if !b.cc.InsecureSkipVerify {
		return nil
	}
	w := []string{"insecure_skip_verify is on: the upstream's certificate is not verified; " +
		"use only in development"}
	if in := serverCAInput(b.cc); in.isSet() {
		w = append(w, in.usedKey()+" is ignored while insecure_skip_verify is on")
	}
	return w
}

// certificateID hashes everything that makes two certificates interchangeable on an
// upstream connection. Each part is length-prefixed so that no two different
// inputs hash the same bytes. The public key stands for the private key: a key pair
// has one public half, so a new key always gives a new ID. (Encoding the private key
// here made the crypto package keep a second copy of every key.)
func certificateID(c *Certificate, key crypto.Signer,
	serverCAs []*x509.Certificate) (string, error) {
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", fmt.Errorf("cannot encode the public key: %w", err)
	}
	h := sha256.New()
	writePart(h, c.TLS.Certificate[0])
	writeCerts(h, c.Chain)
	pubSum := sha256.Sum256(pub)
	writePart(h, pubSum[:])
	writePart(h, []byte(c.ServerName))
	writeCerts(h, serverCAs)
	writePart(h, []byte(fmt.Sprint(c.InsecureSkipVerify)))
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeCerts(h hash.Hash, certs []*x509.Certificate) {
	writePart(h, binary.BigEndian.AppendUint64(nil, uint64(len(certs))))
	for _, c := range certs {
		writePart(h, c.Raw)
	}
}

func writePart(h hash.Hash, b []byte) {
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
	h.Write(b)
}
