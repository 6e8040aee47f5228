// Command echoserver is a small HTTPS server for trying mtlsproxy: it demands a
// client certificate signed by -client-ca and answers every request with JSON that
// shows what arrived: the client certificate's subject and serial, how many
// certificates the client sent, the server name (SNI) it was asked for, the
// method, the path and the request headers.
//
//	echoserver -listen 127.0.0.1:8443 -cert server.pem -key server.key \
//	    -client-ca client-root.pem
//
// It prints "listening on https://ADDR" on standard output once it accepts
// connections; with port 0 the address shows the port that was picked.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

// options are the command-line flags.
type options struct {
	listen   string
	cert     string
	key      string
	clientCA string
	tlsMax   string
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8443", "`address` to listen on")
	flag.StringVar(&o.cert, "cert", "", "server certificate `file` (PEM, may hold a chain)")
	flag.StringVar(&o.key, "key", "", "server private key `file` (PEM)")
	flag.StringVar(&o.clientCA, "client-ca", "",
		"`file` of CA certificates that client certificates must chain to")
	flag.StringVar(&o.tlsMax, "tls-max", "1.3", "highest TLS `version` offered: 1.2 or 1.3")
	flag.Parse()

	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "echoserver: %v\n", err)
		os.Exit(1)
	}
}

// run starts the server and serves until the process is stopped.
func run(o options, stdout io.Writer) error {
	cfg, err := tlsConfig(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(echo),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(os.Stderr, "echoserver: ", log.LstdFlags),
	}
	fmt.Fprintf(stdout, "listening on https://%s\n", ln.Addr())
	return srv.Serve(tls.NewListener(ln, cfg))
}

// tlsConfig builds a server configuration that requires and verifies a client
// certificate.
func tlsConfig(o options) (*tls.Config, error) {
	if o.cert == "" || o.key == "" || o.clientCA == "" {
		return nil, errors.New("-cert, -key and -client-ca are required")
	}
	pair, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	pool, err := loadPool(o.clientCA)
	if err != nil {
		return nil, err
	}
	maxVersion, err := parseTLSVersion(o.tlsMax)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   maxVersion,
	}, nil
}

// loadPool reads a PEM file of CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client CA %s: no PEM certificate found", path)
	}
	return pool, nil
}

// parseTLSVersion maps "1.2" and "1.3" to their crypto/tls constants.
func parseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3", "":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("-tls-max: %q is not supported; use 1.2 or 1.3", s)
}

// report is the JSON answer: what the server saw of the request.
type report struct {
	ClientSubject string      `json:"client_subject"`
	ClientSerial  string      `json:"client_serial"`
	ChainLength   int         `json:"chain_length"`
	SNI           string      `json:"sni"`
	TLSVersion    string      `json:"tls_version"`
	Method        string      `json:"method"`
	Path          string      `json:"path"`
	Headers       http.Header `json:"headers"`
}

// echo answers with the report of r.
func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(describe(r))
}

// describe collects what the server saw of r and its connection.
func describe(r *http.Request) report {
	rep := report{Method: r.Method, Path: r.URL.RequestURI(), Headers: r.Header}
	if r.TLS == nil {
		return rep
	}
	rep.SNI = r.TLS.ServerName
	rep.TLSVersion = tls.VersionName(r.TLS.Version)
	rep.ChainLength = len(r.TLS.PeerCertificates)
	if rep.ChainLength > 0 {
		leaf := r.TLS.PeerCertificates[0]
		rep.ClientSubject = leaf.Subject.String()
		rep.ClientSerial = leaf.SerialNumber.Text(16)
	}
	return rep
}
