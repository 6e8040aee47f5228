package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mtlsproxy/mtlsproxy/admin"
	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// adminRunner runs the admin listener, or nothing when [admin] disabled is set.
type adminRunner struct {
	srv    *admin.Server
	listen string
	grace  time.Duration
}

// newAdmin reads the tokens and builds the admin server on the shared Reloader,
// with the certificate, reload, Go runtime and process metrics in reg.
func newAdmin(cfg *certconfig.Config, d *daemon, reg *prometheus.Registry) (*adminRunner, error) {
	reg.MustRegister(admin.NewCertificateCollector(d.cur),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Admin.Disabled {
		return &adminRunner{}, nil
	}
	o, err := adminOptions(cfg)
	if err != nil {
		return nil, err
	}
	o.Reloader, o.Current, o.Gatherer, o.Logger = d.rel, d.cur, reg, d.log
	srv, err := admin.New(o)
	if err != nil {
		return nil, err
	}
	return &adminRunner{srv: srv, listen: cfg.Admin.Listen,
		grace: cfg.Proxy.ShutdownGrace.Duration}, nil
}

// adminOptions reads the token files of [admin] into the options the admin server
// is built with; check builds it from the same options, without listening.
func adminOptions(cfg *certconfig.Config) (admin.Options, error) {
	token, tokenErr := readToken(cfg, cfg.Admin.TokenFile, "admin.token_file")
	readOnly, readErr := readToken(cfg, cfg.Admin.ReadTokenFile, "admin.read_token_file")
	if err := errors.Join(tokenErr, readErr); err != nil {
		return admin.Options{}, err
	}
	return admin.Options{Token: token, ReadToken: readOnly, Listen: cfg.Admin.Listen}, nil
}

// readToken reads one token file; an unset key gives no token.
func readToken(cfg *certconfig.Config, path, key string) (string, error) {
	if path == "" {
		return "", nil
	}
	tok, err := admin.ReadTokenFile(cfg.Resolve(path))
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return tok, nil
}

// start listens and serves in the background; a failure of Serve is sent to served.
func (a *adminRunner) start(served chan<- error) error {
	if a.srv == nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.listen)
	if err != nil {
		return err
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil {
			served <- err
		}
	}()
	return nil
}

// stop shuts the admin listener down within the shutdown grace period.
func (a *adminRunner) stop() {
	if a.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.grace)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}
