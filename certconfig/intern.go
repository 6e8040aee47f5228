package certconfig

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"runtime"
	"sync"
	"weak"
)

// Thousands of certificates usually share a few CA certificates: the intermediate
// in every ca_file, the root in every server_ca_file. Parsing each copy separately
// kept one parsed certificate and one pool per client certificate, which for
// 10,000 certificates was most of the process's memory. The caches below hand out
// one shared value per distinct input; they hold it weakly, so values no snapshot
// uses any more are collected as usual.

// internTable maps a SHA-256 of the input to a weakly held value.
type internTable[T any] struct{ m sync.Map }

func (in *internTable[T]) get(key [32]byte, build func() (*T, error)) (*T, error) {
	if v, ok := in.m.Load(key); ok {
		if p := v.(weak.Pointer[T]).Value(); p != nil {
			return p, nil
		}
	}
	p, err := build()
	if err != nil {
		return nil, err
	}
	wp := weak.Make(p)
	if prev, loaded := in.m.LoadOrStore(key, wp); loaded {
		if q := prev.(weak.Pointer[T]).Value(); q != nil {
			return q, nil // another goroutine built the same value first
		}
		in.m.Store(key, wp)
	}
	runtime.AddCleanup(p, func(k [32]byte) { in.m.CompareAndDelete(k, wp) }, key)
	return p, nil
}

var parsedCerts internTable[x509.Certificate]

// parseCertificate is x509.ParseCertificate, shared between identical DER inputs.
// Parsed certificates are never changed by this package or its users.
func parseCertificate(der []byte) (*x509.Certificate, error) {
	return parsedCerts.get(sha256.Sum256(der), func() (*x509.Certificate, error) {
		return x509.ParseCertificate(der)
	})
}

// serverCAs is a pool of roots for verifying upstreams and its PEM text.
type serverCAs struct {
	pool *x509.CertPool
	pem  []byte
}

var serverCAPools internTable[serverCAs]

// sharedServerCAs returns the pool of cas, shared with every certificate that
// names the same CAs in the same order.
func sharedServerCAs(cas []*x509.Certificate) *serverCAs {
	h := sha256.New()
	for _, ca := range cas {
		h.Write(ca.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	v, _ := serverCAPools.get(key, func() (*serverCAs, error) {
		s := &serverCAs{pool: x509.NewCertPool()}
		for _, ca := range cas {
			s.pool.AddCert(ca)
			s.pem = append(s.pem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
				Bytes: ca.Raw})...)
		}
		return s, nil
	})
	return v
}
