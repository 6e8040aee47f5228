package proxy_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
	"github.com/mtlsproxy/mtlsproxy/proxy"
)

// rotationRig is the whole reload path on loopback: PEM files on disk, the file
// watcher, the Reloader, the proxy, and an mTLS upstream that answers with the
// serial number of the client certificate it was shown.
type rotationRig struct {
	dir      string
	clientCA *testpki.Cert
	cur      *certconfig.Current
	proxyURL *url.URL
	target   string
	// minSerial is the serial of certificate "a" in the snapshot in force, set
	// after the proxy has dropped its pools for the previous one.
	minSerial atomic.Int64
}

func newRotationRig(t *testing.T) *rotationRig {
	t.Helper()
	r := &rotationRig{dir: t.TempDir(), clientCA: testpki.NewRoot("rotation clients")}
	serverCA := testpki.NewRoot("rotation server CA")
	up := r.startUpstream(t, serverCA)
	// Plain http://: the proxy originates TLS because the route says so. An
	// https:// URL would make the client tunnel with CONNECT instead.
	r.target = "http://" + up.Listener.Addr().String()

	r.writeFile(t, "server-ca.pem", serverCA.CertPEM())
	r.writePair(t, r.client(1000))
	cfg := fmt.Sprintf(`
[egress]
allow_cidrs = ["127.0.0.0/8"]

[[certificate]]
name = "a"
cert_file = "a.pem"
key_file = "a.key"
server_ca_file = "server-ca.pem"
server_name = "upstream.rotation.test"

[[route]]
host = "127.0.0.1"
certificate = "a"
tls = true
`)
	r.writeFile(t, "mtlsproxy.toml", []byte(cfg))

	r.cur = &certconfig.Current{}
	rel := &certconfig.Reloader{Path: filepath.Join(r.dir, "mtlsproxy.toml"), Current: r.cur,
		Logger: slog.New(slog.DiscardHandler)}
	if _, err := rel.Reload("start"); err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Current: r.cur, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	// Subscribed after the proxy, so it runs once the old pools are gone.
	r.cur.Subscribe(func(_, s *certconfig.Snapshot) {
		c, _ := s.Certificate("a")
		r.minSerial.Store(c.Leaf().SerialNumber.Int64())
	})
	r.minSerial.Store(1000)
	ps := httptest.NewServer(p)
	t.Cleanup(ps.Close)
	r.proxyURL, _ = url.Parse(ps.URL)

	w, err := certconfig.NewWatcher(rel, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(t.Context()) }()
	t.Cleanup(func() { _ = w.Close(); <-done })
	return r
}

func (r *rotationRig) startUpstream(t *testing.T, ca *testpki.Cert) *httptest.Server {
	t.Helper()
	srvCert := ca.Server(testpki.Options{DNSNames: []string{"upstream.rotation.test"}})
	up := httptest.NewUnstartedServer(http.HandlerFunc(
		func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			pc := req.TLS.PeerCertificates
			if len(pc) == 0 {
				http.Error(w, "no client certificate", http.StatusForbidden)
				return
			}
			_, _ = io.WriteString(w, pc[0].SerialNumber.String())
		}))
	up.TLS = &tls.Config{
		Certificates: []tls.Certificate{srvCert.TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    r.clientCA.Pool(),
	}
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.StartTLS()
	t.Cleanup(up.Close)
	return up
}

func (r *rotationRig) client(serial int64) *testpki.Cert {
	return r.clientCA.Client(testpki.Options{CommonName: "rotating", Serial: serial})
}

func (r *rotationRig) writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(r.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, name)); err != nil {
		t.Fatal(err)
	}
}

// writePair replaces the key first, then the certificate: in between, the reload
// sees a mismatched pair and must keep the old one.
func (r *rotationRig) writePair(t *testing.T, c *testpki.Cert) {
	t.Helper()
	r.writeFile(t, "a.key", c.KeyPEM())
	r.writeFile(t, "a.pem", c.CertPEM())
}

// send makes one request through the proxy and returns the serial the upstream saw.
func (r *rotationRig) send(c *http.Client) (int64, error) {
	resp, err := c.Get(r.target + "/hook")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d (%s): %s", resp.StatusCode,
			resp.Header.Get(proxy.ErrorHeader), body)
	}
	return strconv.ParseInt(string(body), 10, 64)
}

// TestRotationUnderLoad rotates the certificate many times while clients keep
// sending: no request may fail, and a request sent after a rotation is in force
// must never show an older certificate upstream.
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	r := newRotationRig(t)
	const (
		rotations = 12
		senders   = 4
		maxSends  = 5000 // per sender, a bound in count besides the one in time
	)
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		sent   atomic.Int64
		failed atomic.Int64
		stale  atomic.Int64
		errMu  sync.Mutex
		errs   []string
	)
	note := func(s string) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 5 {
			errs = append(errs, s)
		}
	}
	for range senders {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				Proxy: http.ProxyURL(r.proxyURL), MaxIdleConnsPerHost: 2}}
			defer c.CloseIdleConnections()
			for i := 0; i < maxSends; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := r.minSerial.Load()
				got, err := r.send(c)
				sent.Add(1)
				switch {
				case err != nil:
					failed.Add(1)
					note(err.Error())
				case got < want:
					stale.Add(1)
					note(fmt.Sprintf("sent after serial %d was in force, upstream saw %d",
						want, got))
				}
			}
		})
	}

	deadline := time.Now().Add(60 * time.Second)
	for i := int64(1); i <= rotations && time.Now().Before(deadline); i++ {
		time.Sleep(40 * time.Millisecond) // let traffic flow on each version
		r.writePair(t, r.client(1000+i))
		waitSerial(t, r, 1000+i)
	}
	time.Sleep(40 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("%d requests over %d rotations", sent.Load(), rotations)
	if failed.Load() > 0 || stale.Load() > 0 {
		t.Fatalf("%d failed and %d stale of %d requests; first: %q",
			failed.Load(), stale.Load(), sent.Load(), errs)
	}
	if r.minSerial.Load() != 1000+rotations {
		t.Fatalf("last serial in force %d, want %d", r.minSerial.Load(), 1000+rotations)
	}
	if sent.Load() < rotations {
		t.Fatalf("only %d requests were sent; the test did not load the proxy", sent.Load())
	}
}

func waitSerial(t *testing.T, r *rotationRig, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.minSerial.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("serial %d never came into force (have %d, last reload %+v)",
				want, r.minSerial.Load(), r.cur.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRotationPresentsNewMaterialAfterEachWay checks, through the proxy, that each
// way of replacing files ends with the new certificate presented upstream.
func TestRotationPresentsNewMaterialAfterEachWay(t *testing.T) {
	r := newRotationRig(t)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(r.proxyURL)}}
	defer c.CloseIdleConnections()
	ways := []struct {
		name  string
		write func(*testpki.Cert)
	}{
		{"rename over", func(n *testpki.Cert) { r.writePair(t, n) }},
		{"write in place", func(n *testpki.Cert) {
			for name, data := range map[string][]byte{"a.key": n.KeyPEM(), "a.pem": n.CertPEM()} {
				if err := os.WriteFile(filepath.Join(r.dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"delete and recreate", func(n *testpki.Cert) {
			_ = os.Remove(filepath.Join(r.dir, "a.pem"))
			_ = os.Remove(filepath.Join(r.dir, "a.key"))
			r.writePair(t, n)
		}},
	}
	for i, way := range ways {
		serial := int64(2000 + i)
		if got, err := r.send(c); err != nil || got != r.minSerial.Load() {
			t.Fatalf("%s: before: serial %d, err %v", way.name, got, err)
		}
		way.write(r.client(serial))
		waitSerial(t, r, serial)
		if got, err := r.send(c); err != nil || got != serial {
			t.Fatalf("%s: upstream saw serial %d (err %v), want %d", way.name, got, err, serial)
		}
	}
}
