package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testlog"

	"github.com/youmark/pkcs8"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

const (
	adminToken = "admin-token-7f3e9c1d2b"
	readToken  = "read-token-4a8b6c2e91"
	passphrase = "correct horse battery staple"
)

// fixture is the test PKI, made once per test binary because keys are slow to make.
type fixture struct {
	root, inter *testpki.Cert
	cfg         *testpki.Cert // the certificate of the config file
	api         *testpki.Cert // one to add through the API
	renewed     *testpki.Cert // another one, for replacing api
	other       *testpki.Cert // unrelated to the others' keys
	expired     *testpki.Cert
	soon        *testpki.Cert // expires within ExpiryWarning
	future      *testpki.Cert // not yet valid
}

var pki = sync.OnceValue(func() *fixture {
	root := testpki.NewRoot("Admin Test Root")
	inter := root.Intermediate("Admin Test Intermediate")
	year := time.Now().Add(365 * 24 * time.Hour)
	client := func(cn string, o testpki.Options) *testpki.Cert {
		o.CommonName = cn
		if o.NotAfter.IsZero() {
			o.NotAfter = year
		}
		return inter.Client(o)
	}
	return &fixture{
		root:    root,
		inter:   inter,
		cfg:     client("config-client", testpki.Options{DNSNames: []string{"cfg.example"}}),
		api:     client("api-client", testpki.Options{DNSNames: []string{"api.example"}}),
		renewed: client("api-client-renewed", testpki.Options{}),
		other:   client("other-client", testpki.Options{}),
		expired: client("expired-client", testpki.Options{
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}),
		soon: client("soon-client", testpki.Options{
			NotAfter: time.Now().Add(10 * 24 * time.Hour)}),
		future: client("future-client", testpki.Options{
			NotBefore: time.Now().Add(24 * time.Hour), NotAfter: year}),
	}
})

// encryptedKeyPEM is c's key as encrypted PKCS#8.
func encryptedKeyPEM(t *testing.T, c *testpki.Cert, pass string) string {
	t.Helper()
	der, err := pkcs8.MarshalPrivateKey(c.Key, []byte(pass), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
}

// chainPEM is c's certificate followed by its intermediate and root.
func chainPEM(c *testpki.Cert) string {
	return string(c.ChainPEM()) + string(pki().root.CertPEM())
}

// fingerprintOf is the SHA-256 of c's DER as colon-separated lowercase hex pairs.
func fingerprintOf(c *testpki.Cert) string {
	sum := sha256.Sum256(c.Cert.Raw)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join(pairs, ":")
}

// env is a running admin API over a config file and a state folder.
type env struct {
	t        *testing.T
	dir      string
	config   string
	stateDir string
	cur      *certconfig.Current
	reloader *certconfig.Reloader
	srv      *Server
	ts       *httptest.Server
	logs     *syncBuffer
}

// syncBuffer collects a logger's output for a test to read.
type syncBuffer = testlog.Buffer

// baseConfig is the config file of every env: one certificate from files, a route
// naming it, and whatever extra tables a test appends.
func baseConfig(extra string) string {
	return `
[[certificate]]
name = "cfg"
cert_file = "cfg.pem"
key_file = "cfg.key"
ca_file = "ca.pem"
server_name = "upstream.cfg.example"

[[route]]
host = "hooks.cfg.example"
port = 443
certificate = "cfg"
` + extra
}

// newEnv writes the PKI and a config file into a temporary folder, loads it and
// serves the admin API with both tokens on an httptest server.
func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), logs: &syncBuffer{}}
	e.config = filepath.Join(e.dir, "config.toml")
	e.stateDir = filepath.Join(e.dir, "state")
	p := pki()
	e.write("cfg.pem", string(p.cfg.CertPEM()))
	e.write("cfg.key", string(p.cfg.KeyPEM()))
	e.write("ca.pem", string(p.inter.CertPEM())+string(p.root.CertPEM()))
	e.write("config.toml", baseConfig(extra))
	e.start()
	return e
}

// start builds a store, a reloader and a server over the env's files, as a process
// starting up would.
func (e *env) start() {
	t := e.t
	t.Helper()
	store, err := certconfig.OpenStore(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.cur = new(certconfig.Current)
	e.reloader = &certconfig.Reloader{Path: e.config, Current: e.cur, Logger: log, Store: store}
	if _, err := e.reloader.Reload("test start"); err != nil {
		t.Fatalf("load the test configuration: %v", err)
	}
	e.srv, err = New(Options{Reloader: e.reloader, Token: adminToken, ReadToken: readToken,
		Listen: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
}

func (e *env) write(name, data string) {
	e.t.Helper()
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// response is one answer of the API, with every body seen kept for leak checks.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) apiError(t *testing.T) *APIError {
	t.Helper()
	var b errorBody
	r.decode(t, &b)
	if b.Error == nil {
		t.Fatalf("no error in %s", r.body)
	}
	return b.Error
}

// call sends body (a string is sent as is, anything else as JSON) with token.
func (e *env) call(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	what := fmt.Sprintf("%s %s", method, path)
	checkNoSecrets(e.t, what, data)
	if resp.StatusCode < 300 {
		checkNoKeyLabel(e.t, what, data)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// checkNoSecrets fails the test when text holds a PEM key, the passphrase or a piece
// of any private key of the test PKI.
func checkNoSecrets(t *testing.T, what string, text []byte) {
	t.Helper()
	for _, secret := range secrets() {
		if bytes.Contains(text, []byte(secret)) {
			t.Errorf("%s: %.30q appears in %s", what, secret, text)
		}
	}
}

// checkNoKeyLabel fails the test when text mentions a private key at all, which a
// successful answer never needs to. Error messages may name a PEM block's type.
func checkNoKeyLabel(t *testing.T, what string, text []byte) {
	t.Helper()
	if bytes.Contains(text, []byte("PRIVATE KEY")) {
		t.Errorf("%s: \"PRIVATE KEY\" appears in %s", what, text)
	}
}

// secrets are the strings no answer, log line or output may hold.
var secrets = sync.OnceValue(func() []string {
	out := []string{"PRIVATE KEY-----", passphrase}
	p := pki()
	for _, c := range []*testpki.Cert{p.cfg, p.api, p.renewed, p.other, p.expired} {
		body := strings.Join(strings.Split(string(c.KeyPEM()), "\n")[1:3], "")
		out = append(out, body[len(body)-40:])
	}
	return out
})

func (e *env) mustStatus(r response, want int) response {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
	return r
}

// addRequest is a valid request to add c under name.
func addRequest(name string, c *testpki.Cert) AddRequest {
	return AddRequest{Name: name, CertificatePEM: string(c.CertPEM()),
		PrivateKeyPEM: string(c.KeyPEM()), CAPEM: string(pki().inter.CertPEM())}
}

func (e *env) add(req AddRequest) CertificateView {
	e.t.Helper()
	var v CertificateView
	e.mustStatus(e.call(http.MethodPost, "/v1/certificates", adminToken, req),
		http.StatusCreated).decode(e.t, &v)
	return v
}

func (e *env) list() ListResponse {
	e.t.Helper()
	var l ListResponse
	e.mustStatus(e.call(http.MethodGet, "/v1/certificates", readToken, nil),
		http.StatusOK).decode(e.t, &l)
	return l
}

func (e *env) show(name string) CertificateView {
	e.t.Helper()
	var v CertificateView
	e.mustStatus(e.call(http.MethodGet, "/v1/certificates/"+name, readToken, nil),
		http.StatusOK).decode(e.t, &v)
	return v
}

func findView(l ListResponse, name string) (CertificateView, bool) {
	for _, c := range l.Certificates {
		if c.Name == name {
			return c, true
		}
	}
	return CertificateView{}, false
}

func hasWarning(ws []string, text string) bool {
	return slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, text) })
}

func newTestServer(t *testing.T, srv *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// quiet is a logger for tests that do not look at the logs.
var quiet = slog.New(slog.DiscardHandler)
