package certconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestApplyDefaults(t *testing.T) {
	t.Parallel()
	var c Config
	c.ApplyDefaults()
	checks := []struct {
		key       string
		got, want any
	}{
		{"proxy.listen", c.Proxy.Listen, "127.0.0.1:3128"},
		{"proxy.cert_header", c.Proxy.CertHeader, "X-Mtls-Client-Cert"},
		{"proxy.connect", c.Proxy.Connect, "tunnel"},
		{"proxy.dial_timeout", c.Proxy.DialTimeout.Duration, 10 * time.Second},
		{"proxy.tls_handshake_timeout", c.Proxy.TLSHandshakeTimeout.Duration, 10 * time.Second},
		{"proxy.response_header_timeout", c.Proxy.ResponseHeaderTimeout.Duration,
			60 * time.Second},
		{"proxy.idle_conn_timeout", c.Proxy.IdleConnTimeout.Duration, 90 * time.Second},
		{"proxy.client_idle_timeout", c.Proxy.ClientIdleTimeout.Duration, 120 * time.Second},
		{"proxy.read_header_timeout", c.Proxy.ReadHeaderTimeout.Duration, 10 * time.Second},
		{"proxy.shutdown_grace", c.Proxy.ShutdownGrace.Duration, 15 * time.Second},
		{"proxy.max_idle_conns_per_host", c.Proxy.MaxIdleConnsPerHost, 64},
		{"proxy.max_header_bytes", c.Proxy.MaxHeaderBytes, 65536},
		{"admin.listen", c.Admin.Listen, "127.0.0.1:9901"},
		{"admin.state_dir", c.Admin.StateDir, "state"},
		{"log.format", c.Log.Format, "auto"},
		{"log.level", c.Log.Level, "info"},
		{"egress.deny_private", c.Egress.DenyPrivate != nil && *c.Egress.DenyPrivate, true},
	}
	for _, ch := range checks {
		t.Run(ch.key, func(t *testing.T) {
			if !reflect.DeepEqual(ch.got, ch.want) {
				t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
			}
		})
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestApplyDefaultsKeepsSetValues(t *testing.T) {
	t.Parallel()
	deny := false
	c := Config{
		Proxy:  ProxyConfig{Listen: ":8080", DialTimeout: Duration{time.Second}},
		Egress: EgressConfig{DenyPrivate: &deny},
		Log:    LogConfig{Level: "debug"},
	}
	c.ApplyDefaults()
	if c.Proxy.Listen != ":8080" || c.Proxy.DialTimeout.Duration != time.Second ||
		*c.Egress.DenyPrivate || c.Log.Level != "debug" {
		t.Errorf("set values changed: %+v", c)
	}
}

func validConfig() Config {
	c := Config{
		Certificates: []CertificateConfig{
			{Name: "acme", CertFile: "a.pem", KeyFile: "a.key"},
			{Name: "beta.2_x-y", CertPEM: "x", KeyPEM: "y"},
		},
		Routes: []RouteConfig{
			{Host: "hooks.acme.example", Certificate: "acme"},
			{Host: "*.beta.example", Port: 8443, Certificate: "beta.2_x-y"},
			{Host: "tls.example", TLS: true},
		},
	}
	c.ApplyDefaults()
	return c
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // the whole message, or "" for no error
	}{
		{"valid", func(*Config) {}, ""},
		{"connect", func(c *Config) { c.Proxy.Connect = "x" },
			`proxy.connect: "x" is not "tunnel" or "deny"`},
		{"listen without port", func(c *Config) { c.Proxy.Listen = "127.0.0.1" },
			`proxy.listen: "127.0.0.1" is not host:port; write it like "127.0.0.1:3128"`},
		{"listen port", func(c *Config) { c.Proxy.Listen = "127.0.0.1:99999" },
			`proxy.listen: port "99999" is not a number from 0 to 65535`},
		{"listen host", func(c *Config) { c.Proxy.Listen = "bad host:80" },
			`proxy.listen: "bad host" is neither an IP address nor a host name`},
		{"listen IPv6", func(c *Config) { c.Proxy.Listen = "[::1]:3128" }, ""},
		{"admin listen", func(c *Config) { c.Admin.Listen = "nine" },
			`admin.listen: "nine" is not host:port; write it like "127.0.0.1:9901"`},
		{"admin disabled", func(c *Config) { c.Admin.Listen, c.Admin.Disabled = "nine", true },
			""},
		{"header", func(c *Config) { c.Proxy.CertHeader = "X Cert" },
			`proxy.cert_header: "X Cert" contains ' ', which a header name cannot hold`},
		{"negative duration", func(c *Config) {
			c.Proxy.ReadHeaderTimeout = Duration{-time.Second}
		}, `proxy.read_header_timeout: -1s is negative; use a positive duration such as "10s"`},
		{"negative count", func(c *Config) { c.Proxy.MaxIdleConnsPerHost = -1 },
			"proxy.max_idle_conns_per_host: -1 is negative; use a positive number or leave it " +
				"out"},
		{"CIDR", func(c *Config) { c.Egress.AllowCIDRs = []string{"10.0.0.0/8", "10.1.2.3/40"} },
			`egress.allow_cidrs[1]: "10.1.2.3/40" is not a CIDR; write it like "10.0.0.0/8", ` +
				`"192.0.2.7/32" or "fd00::/8"`},
		{"deny CIDR", func(c *Config) { c.Egress.DenyCIDRs = []string{"fd00::/129"} },
			`egress.deny_cidrs[0]: "fd00::/129" is not a CIDR`},
		{"empty host", func(c *Config) { c.Egress.DenyHosts = []string{" "} },
			"egress.deny_hosts[0]: is empty; remove it or write a host name"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" },
			`log.level: "verbose" is not one of "debug", "info", "warn", "error"`},
		{"log format", func(c *Config) { c.Log.Format = "xml" },
			`log.format: "xml" is not one of "auto", "text", "json"`},
		{"state dir", func(c *Config) { c.Admin.StateDir = " " },
			`admin.state_dir: is empty; name a folder such as "state"`},
		{"empty name", func(c *Config) { c.Certificates[1].Name = "" },
			"certificate 2: name is empty; give every certificate a unique name"},
		{"bad name", func(c *Config) { c.Certificates[0].Name = "acme/prod" },
			`certificate 1: name "acme/prod" contains '/'; use only letters, digits, '.', ` +
				`'_' and '-'`},
		{"long name", func(c *Config) { c.Certificates[0].Name = strings.Repeat("a", 129) },
			`certificate 1: name "aaaaaaaaaaaaaaaaaaaa"... is longer than 128 characters`},
		{"duplicate name", func(c *Config) { c.Certificates[1].Name = "acme" },
			`certificate "acme": name is also used by certificate 1; names must be unique`},
		{"both set", func(c *Config) { c.Certificates[0].CertPEM = "x" },
			`certificate "acme": cert_file and cert_pem are both set; keep one`},
		{"server ca both set", func(c *Config) {
			c.Certificates[0].ServerCAFile, c.Certificates[0].ServerCAPEM = "a", "b"
		}, `certificate "acme": server_ca_file and server_ca_pem are both set; keep one`},
		{"key missing", func(c *Config) { c.Certificates[0].KeyFile = "" },
			`certificate "acme": neither key_file nor key_pem is set; give the private key in ` +
				"one of them"},
		{"server name", func(c *Config) { c.Certificates[0].ServerName = "a..b" },
			`certificate "acme": server_name: "a..b" has an empty or over-long label`},
		{"server name IP", func(c *Config) { c.Certificates[0].ServerName = "192.0.2.1" }, ""},
		{"unknown certificate", func(c *Config) { c.Routes[1].Certificate = "nope" },
			`route 2 (host "*.beta.example"): certificate "nope" is not defined; add a ` +
				`[[certificate]] with name = "nope" or fix the name`},
		{"route host", func(c *Config) { c.Routes[0].Host = "a b" },
			`route 1 (host "a b"): host: "a b": contains ' '`},
		{"route port", func(c *Config) { c.Routes[0].Port = 70000 },
			`route 1 (host "hooks.acme.example"): port: 70000 is out of range`},
		{"route does nothing", func(c *Config) { c.Routes[2].TLS = false },
			`route 3 (host "tls.example"): certificate is empty and tls is false`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			// Renaming a certificate also orphans its route: only the first line is
			// about the change itself.
			if err == nil || !strings.HasPrefix(strings.Split(err.Error(), "\n")[0], tc.want) {
				t.Fatalf("error %q, want it to start with %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Proxy.Connect = "x"
	c.Log.Level = "loud"
	c.Certificates[1].Name = "acme"
	c.Routes[0].Certificate = "nope"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	// The renamed certificate leaves route 2 without its certificate: five problems.
	if len(lines) != 5 {
		t.Errorf("got %d lines, want 5:\n%v", len(lines), err)
	}
	if !errors.Is(err, ErrUnknownCertificate) || !errors.Is(err, ErrBadName) {
		t.Errorf("error does not match its sentinels: %v", err)
	}
}
