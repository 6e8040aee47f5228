// Package admin owns mtlsproxy's admin HTTP API: listing, adding, replacing,
// enabling, disabling and deleting client certificates, the health and readiness
// probes, and the Prometheus metrics endpoint. It also holds the client and the
// "mtlsproxy certs" command line that talk to that API.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// Limits of the admin HTTP server. The API is small and local; anything slower or
// larger than this is a stuck or hostile client.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 32 << 10
)

// Options configure a Server.
type Options struct {
	// Reloader applies changes. Without it the change routes answer 503.
	Reloader *certconfig.Reloader
	// Current is the snapshot in force; nil means Reloader.Current.
	Current *certconfig.Current
	// Token may read and change; ReadToken may only read. Both are the tokens
	// themselves, as ReadTokenFile returns them. With neither, every route but
	// /healthz answers 401.
	Token, ReadToken string
	// Listen is admin.listen. Without Token it must be a loopback address.
	Listen string
	// Gatherer is served at /metrics; nil means a registry holding only the
	// collector of NewCertificateCollector.
	Gatherer prometheus.Gatherer
	// Logger receives one line per change; nil means slog.Default().
	Logger *slog.Logger
}

// Server is the admin HTTP API.
type Server struct {
	reloader  *certconfig.Reloader
	current   *certconfig.Current
	token     *tokenSum
	readToken *tokenSum
	listen    string
	gatherer  prometheus.Gatherer
	log       *slog.Logger
	now       func() time.Time

	handler http.Handler
	srv     *http.Server
}

// New checks o and builds the server. It refuses a non-loopback listen address
// without a change token, and identical change and read tokens.
func New(o Options) (*Server, error) {
	if o.Current == nil && o.Reloader != nil {
		o.Current = o.Reloader.Current
	}
	if o.Current == nil {
		return nil, errors.New("admin: no current snapshot: set Options.Current or Reloader")
	}
	if err := checkTokens(o); err != nil {
		return nil, err
	}
	s := &Server{
		reloader:  o.Reloader,
		current:   o.Current,
		token:     sumToken(o.Token),
		readToken: sumToken(o.ReadToken),
		listen:    o.Listen,
		gatherer:  o.Gatherer,
		log:       o.Logger,
		now:       time.Now,
	}
	s.setDefaults()
	s.handler = s.routes()
	s.srv = s.httpServer()
	return s, nil
}

func checkTokens(o Options) error {
	if o.Token != "" && o.Token == o.ReadToken {
		return errors.New("admin.read_token_file holds the same token as admin.token_file; " +
			"the read-only token must differ")
	}
	if o.Token == "" && o.Listen != "" && !isLoopback(o.Listen) {
		return notLoopbackError(o.Listen)
	}
	return nil
}

func notLoopbackError(addr string) error {
	return fmt.Errorf("admin.listen %s is not loopback and admin.token_file is not set; "+
		"set a token or listen on 127.0.0.1", addr)
}

func (s *Server) setDefaults() {
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.gatherer == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCertificateCollector(s.current))
		s.gatherer = reg
	}
}

// isLoopback reports whether addr ("host:port") only listens on loopback. An empty
// host listens everywhere; a name other than localhost could resolve anywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until Shutdown. It returns nil after Shutdown. Without
// a change token it refuses a listener that is not on loopback.
func (s *Server) Serve(ln net.Listener) error {
	if s.token == nil && !isLoopback(ln.Addr().String()) {
		return notLoopbackError(ln.Addr().String())
	}
	s.log.Info("admin API listening", "address", ln.Addr().String(),
		"token", s.token != nil, "read_token", s.readToken != nil)
	if s.token == nil && s.readToken == nil {
		s.log.Warn("admin API has no token: every route but /healthz answers 401; " +
			"set admin.token_file to use it")
	}
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests and waits, until ctx ends, for those in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// route is one path of the API with a handler per method.
type route struct {
	path    string
	methods map[string]http.HandlerFunc
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.table() {
		allowed := make([]string, 0, len(rt.methods)+1)
		for m, h := range rt.methods {
			mux.HandleFunc(m+" "+rt.path, h)
			allowed = append(allowed, m)
			if m == http.MethodGet {
				allowed = append(allowed, http.MethodHead)
			}
		}
		slices.Sort(allowed)
		mux.HandleFunc(rt.path, methodNotAllowed(allowed))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apiErrorf(http.StatusNotFound, CodeNotFound,
			"no such route %s; the API lives under /v1/certificates", r.URL.Path))
	})
	return mux
}

func (s *Server) table() []route {
	read := func(h http.HandlerFunc) http.HandlerFunc { return s.require(RoleRead, h) }
	change := func(h http.HandlerFunc) http.HandlerFunc { return s.require(RoleAdmin, h) }
	metrics := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
	return []route{
		{"/v1/certificates", map[string]http.HandlerFunc{
			http.MethodGet: read(s.list), http.MethodPost: change(s.add)}},
		{"/v1/certificates/{name}", map[string]http.HandlerFunc{
			http.MethodGet: read(s.show), http.MethodDelete: change(s.delete)}},
		{"/v1/certificates/{name}/material", map[string]http.HandlerFunc{
			http.MethodPut: change(s.replace)}},
		{"/v1/certificates/{name}/enable", map[string]http.HandlerFunc{
			http.MethodPost: change(s.setEnabled(true))}},
		{"/v1/certificates/{name}/disable", map[string]http.HandlerFunc{
			http.MethodPost: change(s.setEnabled(false))}},
		{"/healthz", map[string]http.HandlerFunc{http.MethodGet: s.healthz}},
		{"/readyz", map[string]http.HandlerFunc{http.MethodGet: read(s.readyz)}},
		{"/metrics", map[string]http.HandlerFunc{http.MethodGet: read(metrics.ServeHTTP)}},
	}
}

func methodNotAllowed(allowed []string) http.HandlerFunc {
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, apiErrorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
	}
}
