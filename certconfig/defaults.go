package certconfig

import (
	"path/filepath"
	"time"
)

// Default values of the keys an operator may leave out. They are documented next to
// each field in config.go and in config.example.toml.
const (
	DefaultListen         = "127.0.0.1:3128"
	DefaultCertHeader     = "X-Mtls-Client-Cert"
	DefaultConnect        = ConnectTunnel
	DefaultAdminListen    = "127.0.0.1:9901"
	DefaultStateDir       = "state"
	DefaultLogFormat      = "auto"
	DefaultLogLevel       = "info"
	DefaultMaxIdlePerHost = 64
	DefaultMaxHeaderBytes = 64 << 10
)

// Values of proxy.connect.
const (
	ConnectTunnel = "tunnel" // CONNECT is relayed unchanged
	ConnectDeny   = "deny"   // CONNECT is refused
)

// Default timeouts of the [proxy] table.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultClientIdleTimeout     = 120 * time.Second
	DefaultTunnelIdleTimeout     = 5 * time.Minute
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultShutdownGrace         = 15 * time.Second
)

// ApplyDefaults fills every key left at its zero value with its default. It is the
// one place defaults are set; it does not touch [[certificate]] or [[route]] tables,
// whose unset values are read as documented on their fields.
func (c *Config) ApplyDefaults() {
	c.Proxy.applyDefaults()
	c.Admin.applyDefaults()
	c.Log.applyDefaults()
	if c.Egress.DenyPrivate == nil {
		deny := true
		c.Egress.DenyPrivate = &deny
	}
}

func (p *ProxyConfig) applyDefaults() {
	setString(&p.Listen, DefaultListen)
	setString(&p.CertHeader, DefaultCertHeader)
	setString(&p.Connect, DefaultConnect)
	setDuration(&p.DialTimeout, DefaultDialTimeout)
	setDuration(&p.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	setDuration(&p.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	setDuration(&p.IdleConnTimeout, DefaultIdleConnTimeout)
	setDuration(&p.ClientIdleTimeout, DefaultClientIdleTimeout)
	setDuration(&p.TunnelIdleTimeout, DefaultTunnelIdleTimeout)
	setDuration(&p.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDuration(&p.ShutdownGrace, DefaultShutdownGrace)
	setInt(&p.MaxIdleConnsPerHost, DefaultMaxIdlePerHost)
	setInt(&p.MaxHeaderBytes, DefaultMaxHeaderBytes)
}

func (a *AdminConfig) applyDefaults() {
	setString(&a.Listen, DefaultAdminListen)
	setString(&a.StateDir, DefaultStateDir)
}

func (l *LogConfig) applyDefaults() {
	setString(&l.Format, DefaultLogFormat)
	setString(&l.Level, DefaultLogLevel)
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
	}
}

// Resolve turns a path from the configuration into an absolute one: relative paths
// start at the config file's folder. An empty path stays empty.
func (c *Config) Resolve(path string) string {
	return resolvePath(c.Dir, path)
}

func resolvePath(dir, path string) string {
	if path == "" {
		return ""
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}
