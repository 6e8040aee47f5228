package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

const (
	streamTotal = 8 << 20 // bytes sent each way
	streamGate  = 1 << 20 // a side stops after this much until the other side saw half
	gateWait    = 10 * time.Second
)

// stream is a reproducible pseudo-random byte stream.
func stream(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

func digest(seed byte, n int64) string {
	h := sha256.New()
	_, _ = io.CopyN(h, stream(seed), n)
	return hex.EncodeToString(h.Sum(nil))
}

// gatedReader yields total bytes of src but stops after gate bytes until open is
// closed. If the proxy held the whole body before sending it on, open would
// never close.
type gatedReader struct {
	src         io.Reader
	left, gate  int64
	open        <-chan struct{}
	gateTimeout error
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	sent := streamTotal - g.left
	if sent >= g.gate && g.gate > 0 {
		select {
		case <-g.open:
			g.gate = 0
		case <-time.After(gateWait):
			g.gateTimeout = errors.New("the upstream never saw the start of the body")
			return 0, g.gateTimeout
		}
	}
	limit := g.left
	if g.gate > 0 {
		limit = g.gate - sent
	}
	if int64(len(p)) > limit {
		p = p[:limit]
	}
	n, err := g.src.Read(p)
	g.left -= int64(n)
	return n, err
}

// signalAfter copies src to dst and closes signal once half of gate has arrived.
func signalAfter(dst io.Writer, src io.Reader, gate int64, signal chan<- struct{}) (int64, error) {
	n, err := io.CopyN(dst, src, gate/2)
	close(signal)
	if err != nil {
		return n, err
	}
	m, err := io.Copy(dst, src)
	return n + m, err
}

// TestStreamingBothWays moves 8 MiB up and 8 MiB down in lock step: each side
// stops after 1 MiB until the other end has received half of it. A proxy that
// buffered either body whole would stall the exchange.
func TestStreamingBothWays(t *testing.T) {
	t.Parallel()
	upstreamSawStart := make(chan struct{})
	clientSawStart := make(chan struct{})
	var serverErr atomic.Value
	up := upstream{handler: func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := signalAfter(h, r.Body, streamGate, upstreamSawStart)
		if err != nil || n != streamTotal {
			serverErr.Store(fmt.Sprintf("upload: %d bytes, %v", n, err))
			return
		}
		w.Header().Set("Trailer", "X-Upload-Sha256")
		serveGated(w, clientSawStart, &serverErr)
		w.Header().Set("X-Upload-Sha256", hex.EncodeToString(h.Sum(nil)))
	}}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))

	body := &gatedReader{src: stream(1), left: streamTotal, gate: streamGate, open: upstreamSawStart}
	req, _ := http.NewRequest(http.MethodPut, httpURL(up.URL)+"/blob", body)
	req.ContentLength = streamTotal
	req.Header.Set(DefaultCertHeader, "acme")
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatalf("upload: %v (gate: %v)", err, body.gateTimeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
		t.Fatalf("status %d, length %d", resp.StatusCode, resp.ContentLength)
	}

	got := sha256.New()
	n, err := signalAfter(got, resp.Body, streamGate, clientSawStart)
	if err != nil || n != streamTotal {
		t.Fatalf("download: %d bytes, %v; upstream: %v", n, err, serverErr.Load())
	}
	checkDigest(t, "download", got, digest(2, streamTotal))
	if want := digest(1, streamTotal); resp.Trailer.Get("X-Upload-Sha256") != want {
		t.Errorf("upload digest trailer %q, want %q", resp.Trailer.Get("X-Upload-Sha256"), want)
	}
	if o := h.lastOutcome(t); o.BytesIn != streamTotal || o.BytesOut != streamTotal {
		t.Errorf("outcome counts %d in, %d out", o.BytesIn, o.BytesOut)
	}
}

// serveGated writes the download stream, stopping after the gate until the
// client has received half of it.
func serveGated(w http.ResponseWriter, clientSawStart <-chan struct{}, errs *atomic.Value) {
	src := stream(2)
	if _, err := io.CopyN(w, src, streamGate); err != nil {
		errs.Store(err.Error())
		return
	}
	w.(http.Flusher).Flush()
	select {
	case <-clientSawStart:
	case <-time.After(gateWait):
		errs.Store("the client never saw the start of the download")
		return
	}
	if _, err := io.CopyN(w, src, streamTotal-streamGate); err != nil {
		errs.Store(err.Error())
	}
}

func checkDigest(t *testing.T, what string, h hash.Hash, want string) {
	t.Helper()
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("%s digest %s, want %s", what, got, want)
	}
}

// TestUnknownLengthFlushed sends one short line and waits for the client to read
// it before sending the next: a proxy that held small writes in its buffer would
// keep the first line back.
func TestUnknownLengthFlushed(t *testing.T) {
	t.Parallel()
	clientReadFirst := make(chan struct{})
	var stalled atomic.Bool
	up := upstream{handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"n":1}`)
		w.(http.Flusher).Flush()
		select {
		case <-clientReadFirst:
		case <-time.After(gateWait):
			stalled.Store(true)
		}
		fmt.Fprintln(w, `{"n":2}`)
	}}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	req, _ := http.NewRequest(http.MethodGet, httpURL(up.URL), nil)
	req.Header.Set(DefaultCertHeader, "acme")
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	lines := bufio.NewReader(resp.Body)
	first, err := lines.ReadString('\n')
	close(clientReadFirst)
	rest, _ := io.ReadAll(lines)
	if err != nil || first != "{\"n\":1}\n" || string(rest) != "{\"n\":2}\n" {
		t.Fatalf("read %q then %q (%v)", first, rest, err)
	}
	if stalled.Load() {
		t.Error("the first line reached the client only after the upstream gave up waiting")
	}
}

func TestRequestTrailers(t *testing.T) {
	t.Parallel()
	up := upstream{}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	req, _ := http.NewRequest(http.MethodPost, httpURL(up.URL),
		io.MultiReader(strings.NewReader("chunked body")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Checksum": {"abc"}}
	req.Header.Set(DefaultCertHeader, "acme")
	resp, body := h.do(t, req)
	e := decodeEcho(t, resp, body)
	if e.Trailer.Get("X-Checksum") != "abc" || e.BodyLen != int64(len("chunked body")) {
		t.Errorf("upstream saw trailer %v and %d bytes", e.Trailer, e.BodyLen)
	}
}
