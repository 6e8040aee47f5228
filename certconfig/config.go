// Package certconfig owns mtlsproxy's configuration: the TOML schema, the parsing
// of certificates and keys in the forms operators paste, validation, the immutable
// snapshot that the proxy and the admin API read, the durable store that admin
// changes are written to, and the file watcher that reloads all of it.
package certconfig

import (
	"time"
)

// Config is the TOML file as written by the operator, before any file it names is
// read. Zero values mean "use the default"; Defaults fills them in.
type Config struct {
	Proxy  ProxyConfig  `toml:"proxy"`
	Egress EgressConfig `toml:"egress"`
	Admin  AdminConfig  `toml:"admin"`
	Log    LogConfig    `toml:"log"`
	// Certificates is emptied in a loaded snapshot's Config: Snapshot.Certificates
	// holds what they became.
	Certificates []CertificateConfig `toml:"certificate"`
	Routes       []RouteConfig       `toml:"route"`

	// Dir is the folder of the config file; relative paths are resolved against it.
	Dir string `toml:"-"`
	// Path is the config file itself, as given on the command line.
	Path string `toml:"-"`
}

// ProxyConfig is the [proxy] table.
type ProxyConfig struct {
	Listen     string `toml:"listen"`      // default 127.0.0.1:3128
	CertHeader string `toml:"cert_header"` // default X-Mtls-Client-Cert
	// Connect says what to do with CONNECT requests: "tunnel" (default) or "deny".
	Connect string `toml:"connect"`
	// AuthFile, when set, names a file of "user:password" lines; clients must send
	// Proxy-Authorization: Basic or get 407.
	AuthFile string `toml:"auth_file"`

	DialTimeout           Duration `toml:"dial_timeout"`            // default 10s
	TLSHandshakeTimeout   Duration `toml:"tls_handshake_timeout"`   // default 10s
	ResponseHeaderTimeout Duration `toml:"response_header_timeout"` // default 60s
	IdleConnTimeout       Duration `toml:"idle_conn_timeout"`       // default 90s
	ClientIdleTimeout     Duration `toml:"client_idle_timeout"`     // default 120s
	TunnelIdleTimeout     Duration `toml:"tunnel_idle_timeout"`     // default 5m
	ReadHeaderTimeout     Duration `toml:"read_header_timeout"`     // default 10s
	ShutdownGrace         Duration `toml:"shutdown_grace"`          // default 15s
	MaxIdleConnsPerHost   int      `toml:"max_idle_conns_per_host"` // default 64
	MaxHeaderBytes        int      `toml:"max_header_bytes"`        // default 64 KiB
}

// EgressConfig is the [egress] table: which destinations may be dialled.
type EgressConfig struct {
	// DenyPrivate refuses loopback, private, link-local, metadata and similar
	// addresses. A pointer because unset means true.
	DenyPrivate *bool    `toml:"deny_private"`
	AllowCIDRs  []string `toml:"allow_cidrs"`
	DenyCIDRs   []string `toml:"deny_cidrs"`
	AllowHosts  []string `toml:"allow_hosts"`
	DenyHosts   []string `toml:"deny_hosts"`
}

// AdminConfig is the [admin] table.
type AdminConfig struct {
	Listen        string `toml:"listen"`          // default 127.0.0.1:9901; "" after defaults never
	TokenFile     string `toml:"token_file"`      // may read and change
	ReadTokenFile string `toml:"read_token_file"` // may only read
	StateDir      string `toml:"state_dir"`       // default "state"
	// Disabled turns the admin listener off entirely.
	Disabled bool `toml:"disabled"`
}

// LogConfig is the [log] table.
type LogConfig struct {
	Format string `toml:"format"` // "auto" (default: text on a terminal), "text", "json"
	Level  string `toml:"level"`  // "debug", "info" (default), "warn", "error"
}

// CertificateConfig is one [[certificate]] table. Each PEM field has a file and an
// inline form; exactly one of the two may be set.
type CertificateConfig struct {
	Name               string `toml:"name"`
	CertFile           string `toml:"cert_file"`
	CertPEM            string `toml:"cert_pem"`
	KeyFile            string `toml:"key_file"`
	KeyPEM             string `toml:"key_pem"`
	PassphraseFile     string `toml:"passphrase_file"`
	PassphraseEnv      string `toml:"passphrase_env"`
	CAFile             string `toml:"ca_file"`
	CAPEM              string `toml:"ca_pem"`
	ServerName         string `toml:"server_name"`
	ServerCAFile       string `toml:"server_ca_file"`
	ServerCAPEM        string `toml:"server_ca_pem"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	Enabled            *bool  `toml:"enabled"` // unset means true

	// Passphrase is given directly through the admin API. It is never read from
	// or written to TOML; when set, passphrase_file and passphrase_env must not be.
	Passphrase string `toml:"-"`
}

// RouteConfig is one [[route]] table.
type RouteConfig struct {
	Host        string `toml:"host"` // "hooks.acme.example", "*.acme.example" or an IP
	Port        int    `toml:"port"` // 0: any port
	Certificate string `toml:"certificate"`
	TLS         bool   `toml:"tls"`
}

// Duration is a time.Duration written in TOML as a Go duration string ("10s").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }
