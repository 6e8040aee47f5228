package main

import (
	"context"
	"errors"
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
	token, err := readToken(cfg, cfg.Admin.TokenFile, "admin.token_file")
	if err != nil {
		return nil, err
	}
	readToken, err := readToken(cfg, cfg.Admin.ReadTokenFile, "admin.read_token_file")
	if err != nil {
		return nil, err
	}
	srv, err := admin.New(admin.Options{Reloader: d.rel, Current: d.cur, Token: token,
		ReadToken: readToken, Listen: cfg.Admin.Listen, Gatherer: reg, Logger: d.log})
	if err != nil {
		return nil, err
	}
	return &adminRunner{srv: srv, listen: cfg.Admin.Listen,
		grace: cfg.Proxy.ShutdownGrace.Duration}, nil
}

// readToken reads one token file; an unset key gives no token.
func readToken(cfg *certconfig.Config, path, key string) (string, error) {
	if path == "" {
		return "", nil
	}
	tok, err := admin.ReadTokenFile(cfg.Resolve(path))
	if err != nil {
		return "", errors.Join(errors.New(key), err)
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
