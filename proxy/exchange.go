package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// Where the certificate of a request came from, as logged.
const (
	sourceHeader = "header"
	sourceRoute  = "route"
)

// exchange is what the proxy knows about one request, from arrival to the log
// line. Fields are written by the goroutine serving the request, except bytesIn
// and hs, which transport goroutines also touch.
type exchange struct {
	start  time.Time
	snap   *certconfig.Snapshot
	method string
	host   string
	tunnel bool
	user   string // the proxy user who authenticated; "" without auth_file

	routed     bool                    // the certificate rules were applied
	certName   string                  // asked for, by header or route
	certSource string                  // sourceHeader, sourceRoute or ""
	cert       *certconfig.Certificate // certName's certificate; nil when unknown
	sent       bool                    // cert's material is offered upstream
	useTLS     bool
	upstream   string // host:port dialled
	warning    string
	transport  http.RoundTripper

	code          string // error code; "" while all is well
	err           error  // the error behind code, for the log
	tunnelStatus  int
	unknownLength bool // the response has no Content-Length: flush as it streams
	resumed       bool

	bytesIn atomic.Int64
	bodyErr atomic.Pointer[error]
	hs      handshakeState
}

type exchangeKey struct{}

func newExchange(s *certconfig.Snapshot, r *http.Request) *exchange {
	host := r.URL.Hostname()
	if host == "" {
		host = r.Host
	}
	return &exchange{start: time.Now(), snap: s, method: r.Method, host: host}
}

func withExchange(ctx context.Context, ex *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

// exchangeFrom returns the exchange ServeHTTP attached to ctx. A context without
// one (which ServeHTTP never produces) gets a detached exchange.
func exchangeFrom(ctx context.Context) *exchange {
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return ex
	}
	return &exchange{start: time.Now()}
}

func (ex *exchange) fail(code string, err error) {
	ex.code, ex.err = code, err
}

// handshakeState records the TLS handshake this request caused, if any. Its
// callbacks run on the transport's dialing goroutine.
type handshakeState struct {
	mu            sync.Mutex
	started       bool
	done          bool
	err           error
	version       uint16
	resumed       bool
	certRequested bool
}

func (h *handshakeState) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		TLSHandshakeStart: func() {
			h.mu.Lock()
			h.started = true
			h.mu.Unlock()
		},
		TLSHandshakeDone: func(st tls.ConnectionState, err error) {
			h.mu.Lock()
			h.done, h.err = true, err
			h.version, h.resumed = st.Version, st.DidResume
			h.mu.Unlock()
		},
	}
}

// requested records that the server asked for a client certificate.
func (h *handshakeState) requested() {
	h.mu.Lock()
	h.certRequested = true
	h.mu.Unlock()
}

// handshook reports whether this request opened a new TLS connection, and whether
// that connection resumed a session.
func (h *handshakeState) handshook() (started, resumed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started, h.resumed
}

// completed reports whether this request completed a TLS handshake with the
// upstream, and whether that handshake resumed a session.
func (h *handshakeState) completed() (ok, resumed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done && h.err == nil, h.resumed
}

// annotate marks err with what the handshake tells about it: failed inside the
// handshake, or a TLS 1.3 certificate rejection whose alert was lost (see
// rejectedError).
func (h *handshakeState) annotate(err error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.err != nil:
		return &handshakeError{err}
	case h.done && h.version == tls.VersionTLS13 && h.certRequested && lostConnection(err):
		return &rejectedError{err}
	}
	return err
}

// countingBody counts the request body bytes read from the client and keeps the
// first error reading it, so that a broken body is not blamed on the upstream.
type countingBody struct {
	io.ReadCloser
	n   *atomic.Int64
	err *atomic.Pointer[error]
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// bodyError is the error met reading the client's request body, or nil.
func (ex *exchange) bodyError() error {
	if p := ex.bodyErr.Load(); p != nil {
		return *p
	}
	return nil
}

// upstreamBody notes an upstream response body that breaks off.
type upstreamBody struct {
	io.ReadCloser
	ex *exchange
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ex.code == "" {
		b.ex.fail(Classify(err, b.ex.cert, b.ex.sent), err)
	}
	return n, err
}

// responseWriter records the status and size of what reaches the client, and
// flushes every write of a response of unknown length so that streams (server-sent
// events, long polls, chunked downloads) are not held in the server's buffer.
type responseWriter struct {
	http.ResponseWriter
	ex     *exchange
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	if err == nil && w.ex.unknownLength {
		w.Flush()
	}
	return n, err
}

// ReadFrom copies a response body to the client. Without it, io.Copy would give
// every response a new 32 KiB buffer, which was two thirds of the memory a proxied
// request allocated. A body of known length goes to the server's own ReadFrom,
// which uses pooled buffers; one of unknown length is copied through Write with a
// pooled buffer, so that each piece is flushed.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.ex.unknownLength {
		buf := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(buf)
		return io.CopyBuffer(writeOnly{w}, src, *buf)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, src)
	w.bytes += n
	return n, err
}

var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// writeOnly hides ReadFrom, so that io.CopyBuffer uses the buffer it is given.
type writeOnly struct{ io.Writer }

// Flush sends what is buffered to the client.
func (w *responseWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap gives http.ResponseController the writer underneath.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
