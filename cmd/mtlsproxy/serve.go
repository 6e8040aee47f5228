package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/proxy"
	"github.com/prometheus/client_golang/prometheus"
)

// serveOptions is what "serve" needs from the command line and the process.
type serveOptions struct {
	configPath string
	listen     string // overrides [proxy] listen when set
	stderr     io.Writer
	signals    <-chan os.Signal
	// ready, when set, is called with the listener's address once it accepts.
	ready func(net.Addr)
}

// serveFlags declares the flags of "serve" into a fresh serveOptions.
func serveFlags(out io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.configPath, "config", "", "configuration `file` (required)")
	fs.StringVar(&o.listen, "listen", "",
		"`address` to listen on, overriding [proxy] listen (port 0 picks a free one)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: mtlsproxy serve -config FILE [-listen ADDR]\n\n"+
			"Runs the proxy. SIGHUP reloads the configuration; SIGTERM or SIGINT\n"+
			"drain in-flight requests and stop; a second signal stops at once.\n\n")
		fs.PrintDefaults()
	}
	return fs, o
}

// runServe implements "mtlsproxy serve".
func runServe(args []string, stderr io.Writer) int {
	fs, o := serveFlags(stderr)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if o.configPath == "" {
		fmt.Fprint(stderr, "mtlsproxy serve: -config is required\n\n")
		fs.Usage()
		return exitUsage
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	o.stderr, o.signals = stderr, sigs
	return serve(*o)
}

// daemon holds what the running proxy shares between signals and reloads.
type daemon struct {
	cur   *certconfig.Current
	rel   *certconfig.Reloader
	log   *slog.Logger
	level *slog.LevelVar
	// cut, when set, is called just before the connections of requests still in
	// flight are closed at the end of the shutdown grace period.
	cut func()
}

// reload loads the configuration file again through the one Reloader that the
// file watcher and the admin API also use, so that changes are applied in order
// and admin changes stay laid over the file. On failure the snapshot in force
// stays; the Reloader logs and records the outcome.
func (d *daemon) reload(trigger string) error {
	_, err := d.rel.Reload(trigger)
	return err
}

// applied runs after every snapshot swap, whatever caused it: it applies the new
// [log] level and says which settings need a restart.
func (d *daemon) applied(old, next *certconfig.Snapshot) {
	d.level.Set(parseLevel(next.Config.Log.Level))
	if old != nil {
		d.warnRestartNeeded(old.Config, next.Config)
	}
}

// serve loads the configuration, starts the listeners and runs until a signal
// stops it. It returns the exit status.
func serve(o serveOptions) int {
	cfg, err := readBootConfig(o.configPath)
	if err != nil {
		fmt.Fprintf(o.stderr, "mtlsproxy serve: %v\n", err)
		return exitError
	}
	log, level := newLogger(o.stderr, cfg.Log)
	d, err := newDaemon(o.configPath, cfg, log, level)
	if err != nil {
		fmt.Fprintf(o.stderr, "mtlsproxy serve: %s: %v\n", o.configPath, err)
		return exitError
	}
	logSnapshot(log, d.cur.Load())

	p, adm, err := d.build()
	if err != nil {
		log.Error("cannot start", "error", err)
		return exitError
	}
	snap := d.cur.Load()
	ln, err := listen(o.listen, snap.Config.Proxy.Listen)
	if err != nil {
		p.Close()
		log.Error("cannot listen", "error", err)
		return exitError
	}
	srv := newHTTPServer(snap.Config.Proxy, p, log)
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if err := adm.start(served); err != nil {
		_ = srv.Close()
		p.Close()
		log.Error("cannot start the admin API", "error", err)
		return exitError
	}
	stopWatch := d.watch()
	tuneGC(d.cur)
	log.Info("listening", "addr", ln.Addr().String(), "version", resolveVersion())
	if o.ready != nil {
		o.ready(ln.Addr())
	}
	stop := func() { stopWatch(); adm.stop(); p.Close() }
	return d.run(srv, stop, served, o.signals)
}

// build makes the proxy and the admin server, sharing one metrics registry.
func (d *daemon) build() (*proxy.Proxy, *adminRunner, error) {
	reg := prometheus.NewRegistry()
	p, err := proxy.New(proxy.Options{Current: d.cur, Logger: d.log, Registerer: reg})
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: %w", err)
	}
	d.cut = p.CutInFlight
	adm, err := newAdmin(d.cur.Load().Config, d, reg)
	if err != nil {
		p.Close()
		return nil, nil, fmt.Errorf("admin API: %w", err)
	}
	return p, adm, nil
}

// readBootConfig reads what is needed before the first load: the [log] settings
// and where the admin state lives. The full load, with every file, follows.
func readBootConfig(path string) (*certconfig.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the config file: %w", err)
	}
	cfg, err := certconfig.Parse(data, path)
	if err != nil {
		return nil, err
	}
	cfg.ApplyDefaults()
	return cfg, nil
}

// newDaemon opens the admin state (unless the admin API is disabled), loads the
// configuration once and prepares reloads.
func newDaemon(path string, cfg *certconfig.Config, log *slog.Logger,
	level *slog.LevelVar) (*daemon, error) {
	rel, err := firstLoad(path, cfg, log, certconfig.OpenStore, "start")
	if err != nil {
		return nil, err
	}
	d := &daemon{cur: rel.Current, rel: rel, log: log, level: level}
	d.cur.Subscribe(d.applied)
	return d, nil
}

// openStoreFunc opens the admin state folder.
type openStoreFunc func(dir string) (*certconfig.Store, error)

// firstLoad builds the Reloader and loads the configuration through it once: the
// config file, with the admin state that open reads from [admin] state_dir laid
// over it unless the admin API is disabled, checked by the proxy. serve and check
// both load this way, so that check accepts exactly what serve would.
func firstLoad(path string, cfg *certconfig.Config, log *slog.Logger, open openStoreFunc,
	reason string) (*certconfig.Reloader, error) {
	rel := &certconfig.Reloader{Path: path, Current: new(certconfig.Current), Logger: log,
		Check: proxy.CheckSnapshot}
	if !cfg.Admin.Disabled {
		store, err := open(cfg.Resolve(cfg.Admin.StateDir))
		if err != nil {
			return nil, err
		}
		rel.Store = store
	}
	rel.Build = compactLoad(rel.Store != nil)
	if _, err := rel.Reload(reason); err != nil {
		return nil, err
	}
	return rel, nil
}

// watch starts the file watcher and returns the function that stops it. Without a
// watcher (the system refused one), SIGHUP still reloads.
func (d *daemon) watch() func() {
	w, err := certconfig.NewWatcher(d.rel, 0)
	if err != nil {
		d.log.Warn("cannot watch the config files; use SIGHUP to reload", "error", err)
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			d.log.Warn("config watcher stopped; use SIGHUP to reload", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}

// listen opens the client-facing socket: override when set, else configured.
func listen(override, configured string) (net.Listener, error) {
	addr := configured
	if override != "" {
		addr = override
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// newHTTPServer is the client-facing server with the limits from [proxy].
func newHTTPServer(pc certconfig.ProxyConfig, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pc.ReadHeaderTimeout.Duration,
		IdleTimeout:       pc.ClientIdleTimeout.Duration,
		MaxHeaderBytes:    pc.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// run waits for signals: SIGHUP reloads, SIGINT and SIGTERM shut down. It returns
// the exit status.
func (d *daemon) run(srv *http.Server, stop func(), served <-chan error,
	sigs <-chan os.Signal) int {
	for {
		select {
		case err := <-served:
			d.log.Error("listener stopped", "error", err)
			stop()
			return exitError
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = d.reload("SIGHUP")
				continue
			}
			return d.shutdown(srv, stop, sig, sigs)
		}
	}
}

// shutdown drains in-flight requests for the configured grace period, then closes
// what is left. A second SIGINT or SIGTERM abandons the wait.
func (d *daemon) shutdown(srv *http.Server, stop func(), sig os.Signal,
	sigs <-chan os.Signal) int {
	grace := d.cur.Load().Config.Proxy.ShutdownGrace.Duration
	d.log.Info("shutting down; draining in-flight requests",
		"signal", sig.String(), "grace", grace.String())

	done := make(chan struct{})
	go func() {
		defer close(done)
		d.drain(srv, grace)
		stop()
	}()
	for {
		select {
		case <-done:
			d.log.Info("stopped")
			return exitOK
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			d.log.Warn("second signal; stopping without waiting", "signal", sig.String())
			return exitError
		}
	}
}

// drain stops accepting, waits up to grace for requests to finish, then closes
// every remaining client connection.
func (d *daemon) drain(srv *http.Server, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err == nil {
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		d.log.Warn("grace period over; closing remaining connections", "grace", grace.String())
	} else {
		d.log.Warn("shutdown", "error", err)
	}
	if d.cut != nil {
		d.cut()
	}
	_ = srv.Close()
}

// warnRestartNeeded logs settings of next that a reload cannot apply because they
// shape the listener or the logger, which are built once at start.
func (d *daemon) warnRestartNeeded(old, next *certconfig.Config) {
	if old.Proxy.Listen != next.Proxy.Listen {
		d.log.Warn("[proxy] listen changed; restart to apply", "listen", next.Proxy.Listen)
	}
	if old.Admin != next.Admin {
		d.log.Warn("[admin] changed; restart to apply, after \"mtlsproxy check\" passes")
	}
	if old.Log.Format != next.Log.Format {
		d.log.Warn("[log] format changed; restart to apply", "format", next.Log.Format)
	}
	if clientLimits(old.Proxy) != clientLimits(next.Proxy) {
		d.log.Warn("[proxy] read_header_timeout, client_idle_timeout or max_header_bytes" +
			" changed; restart to apply")
	}
}

// clientLimits are the [proxy] settings baked into the client-facing server.
func clientLimits(pc certconfig.ProxyConfig) [3]int64 {
	return [3]int64{
		int64(pc.ReadHeaderTimeout.Duration),
		int64(pc.ClientIdleTimeout.Duration),
		int64(pc.MaxHeaderBytes),
	}
}
