package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

func TestParseTLSVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    uint16
		wantErr bool
	}{
		{in: "1.2", want: tls.VersionTLS12},
		{in: "1.3", want: tls.VersionTLS13},
		{in: "", want: tls.VersionTLS13},
		{in: "1.1", wantErr: true},
		{in: "tls1.3", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseTLSVersion(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTLSVersion(%q) = %v, %v; want %v, error %v",
				tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTLSConfigRequiresFiles(t *testing.T) {
	t.Parallel()
	if _, err := tlsConfig(options{cert: "a.pem"}); err == nil {
		t.Fatal("tlsConfig without -key and -client-ca: want an error")
	}
}

// fixture is a running echo server and the PKI around it.
type fixture struct {
	addr   string
	client *testpki.Cert // signed by an intermediate of the client root
	rogue  *testpki.Cert // signed by a root the server does not trust
	server *testpki.Cert
}

func startServer(t *testing.T, tlsMax string) fixture {
	t.Helper()
	dir := t.TempDir()
	clientRoot := testpki.NewRoot("echo client root")
	serverRoot := testpki.NewRoot("echo server root")
	f := fixture{
		client: clientRoot.Intermediate("echo client intermediate").
			Client(testpki.Options{CommonName: "echo client"}),
		rogue:  testpki.NewRoot("rogue").Client(testpki.Options{CommonName: "rogue"}),
		server: serverRoot.Server(testpki.Options{DNSNames: []string{"echo.test"}}),
	}
	o := options{
		listen:   "127.0.0.1:0",
		cert:     writeFile(t, dir, "server.pem", f.server.ChainPEM()),
		key:      writeFile(t, dir, "server.key", f.server.KeyPEM()),
		clientCA: writeFile(t, dir, "ca.pem", clientRoot.CertPEM()),
		tlsMax:   tlsMax,
	}
	pr, pw := io.Pipe()
	go func() { _ = run(o, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read listening line: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	f.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on https://"))
	return f
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func get(f fixture, cert *testpki.Cert, sni string) (*http.Response, error) {
	cfg := &tls.Config{RootCAs: f.server.Issuer.Pool(), ServerName: sni}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS()}
	}
	tr := &http.Transport{
		TLSClientConfig: cfg,
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequest("POST", "https://"+f.addr+"/hook?x=1", strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Demo", "yes")
	return c.Do(req)
}

func TestEchoReportsClientCertificate(t *testing.T) {
	t.Parallel()
	for _, tlsMax := range []string{"1.2", "1.3"} {
		t.Run("tls"+tlsMax, func(t *testing.T) {
			t.Parallel()
			f := startServer(t, tlsMax)
			resp, err := get(f, f.client, "echo.test")
			if err != nil {
				t.Fatalf("request with a trusted client certificate: %v", err)
			}
			defer resp.Body.Close()
			var rep report
			if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
				t.Fatalf("decode answer: %v", err)
			}
			want := report{
				ClientSubject: f.client.Cert.Subject.String(),
				ClientSerial:  f.client.Cert.SerialNumber.Text(16),
				ChainLength:   2,
				SNI:           "echo.test",
				TLSVersion:    "TLS " + tlsMax,
				Method:        "POST",
				Path:          "/hook?x=1",
			}
			if got := rep.Headers.Get("X-Demo"); got != "yes" {
				t.Errorf("header X-Demo = %q, want yes", got)
			}
			rep.Headers = nil
			if !reflect.DeepEqual(rep, want) {
				t.Errorf("report = %+v\nwant     %+v", rep, want)
			}
		})
	}
}

func TestEchoRefusesClients(t *testing.T) {
	t.Parallel()
	f := startServer(t, "1.3")
	tests := []struct {
		name string
		cert *testpki.Cert
	}{
		{name: "no certificate"},
		{name: "untrusted certificate", cert: f.rogue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := get(f, tt.cert, "echo.test")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("status %d; want the connection refused", resp.StatusCode)
			}
		})
	}
}
