package certconfig

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxNameLen bounds certificate names: they travel in headers, logs and metric labels.
const maxNameLen = 128

// Validate checks every key of the configuration without reading any file, and
// reports all problems at once, one per line, each naming the key and the fix. Call
// it after ApplyDefaults: empty listen addresses and log settings are errors.
func (c *Config) Validate() error {
	_, err := c.validate(c.certificateNames())
	return err
}

// validate is Validate with the test of route certificate names given (nil accepts
// any name); it also returns the compiled routes.
func (c *Config) validate(defined func(string) bool) ([]*Route, error) {
	var errs []error
	errs = append(errs, c.Proxy.validate()...)
	errs = append(errs, c.Egress.validate()...)
	errs = append(errs, c.Admin.validate()...)
	errs = append(errs, c.Log.validate()...)
	errs = append(errs, validateCertificates(c.Certificates)...)
	routes, routeErrs := compileRoutes(c.Routes, defined)
	errs = append(errs, routeErrs...)
	return routes, errors.Join(errs...)
}

// certificateNames returns a test of whether c defines a certificate, built once:
// scanning the certificates for each of thousands of routes would be quadratic.
func (c *Config) certificateNames() func(string) bool {
	names := make(map[string]struct{}, len(c.Certificates))
	for _, cc := range c.Certificates {
		names[cc.Name] = struct{}{}
	}
	return func(name string) bool {
		_, ok := names[name]
		return ok
	}
}

func (p *ProxyConfig) validate() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkListen("proxy.listen", p.Listen, DefaultListen))
	add(checkHeaderName("proxy.cert_header", p.CertHeader))
	if p.Connect != ConnectTunnel && p.Connect != ConnectDeny {
		add(fmt.Errorf("proxy.connect: %q is not %q or %q", p.Connect, ConnectTunnel, ConnectDeny))
	}
	for _, d := range p.durations() {
		add(checkDuration(d.key, d.value))
	}
	add(checkNotNegative("proxy.max_idle_conns_per_host", p.MaxIdleConnsPerHost))
	add(checkNotNegative("proxy.max_header_bytes", p.MaxHeaderBytes))
	return errs
}

type namedDuration struct {
	key   string
	value Duration
}

func (p *ProxyConfig) durations() []namedDuration {
	return []namedDuration{
		{"proxy.dial_timeout", p.DialTimeout},
		{"proxy.tls_handshake_timeout", p.TLSHandshakeTimeout},
		{"proxy.response_header_timeout", p.ResponseHeaderTimeout},
		{"proxy.idle_conn_timeout", p.IdleConnTimeout},
		{"proxy.client_idle_timeout", p.ClientIdleTimeout},
		{"proxy.tunnel_idle_timeout", p.TunnelIdleTimeout},
		{"proxy.read_header_timeout", p.ReadHeaderTimeout},
		{"proxy.shutdown_grace", p.ShutdownGrace},
	}
}

func checkDuration(key string, d Duration) error {
	if d.Duration < 0 {
		return fmt.Errorf("%s: %s is negative; use a positive duration such as \"10s\"", key, d)
	}
	return nil
}

func checkNotNegative(key string, n int) error {
	if n < 0 {
		return fmt.Errorf("%s: %d is negative; use a positive number or leave it out", key, n)
	}
	return nil
}

// checkListen accepts "host:port" and ":port" where host is an IP or a name.
func checkListen(key, addr, example string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port; write it like %q", key, addr, example)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: port %q is not a number from 0 to 65535", key, port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if CheckHostName(strings.ToLower(host)) != nil {
		return fmt.Errorf("%s: %q is neither an IP address nor a host name", key, host)
	}
	return nil
}

// checkHeaderName accepts an HTTP header field name (an RFC 9110 token).
func checkHeaderName(key, name string) error {
	if name == "" {
		return fmt.Errorf("%s: is empty; name a request header such as %q", key, DefaultCertHeader)
	}
	for _, c := range name {
		if !isTokenChar(c) {
			return fmt.Errorf("%s: %q contains %q, which a header name cannot hold", key, name, c)
		}
	}
	return nil
}

func isTokenChar(c rune) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", c)
}

func (e *EgressConfig) validate() []error {
	var errs []error
	errs = append(errs, checkCIDRs("egress.allow_cidrs", e.AllowCIDRs)...)
	errs = append(errs, checkCIDRs("egress.deny_cidrs", e.DenyCIDRs)...)
	errs = append(errs, checkHostList("egress.allow_hosts", e.AllowHosts)...)
	errs = append(errs, checkHostList("egress.deny_hosts", e.DenyHosts)...)
	return errs
}

func checkCIDRs(key string, list []string) []error {
	var errs []error
	for i, s := range list {
		s := strings.TrimSpace(s)
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if ip, err := netip.ParseAddr(s); err != nil || ip.Zone() != "" {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a CIDR; write it like "+
				`"10.0.0.0/8", "192.0.2.7/32" or "fd00::/8"`, key, i, s))
		}
	}
	return errs
}

func checkHostList(key string, list []string) []error {
	var errs []error
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			errs = append(errs,
				fmt.Errorf("%s[%d]: is empty; remove it or write a host name", key, i))
		}
	}
	return errs
}

func (a *AdminConfig) validate() []error {
	var errs []error
	if !a.Disabled {
		if err := checkListen("admin.listen", a.Listen, DefaultAdminListen); err != nil {
			errs = append(errs, err)
		}
	}
	if strings.TrimSpace(a.StateDir) == "" {
		errs = append(errs, fmt.Errorf("admin.state_dir: is empty; name a folder such as %q",
			DefaultStateDir))
	}
	return errs
}

func (l *LogConfig) validate() []error {
	var errs []error
	if err := checkOneOf("log.level", l.Level, "debug", "info", "warn", "error"); err != nil {
		errs = append(errs, err)
	}
	if err := checkOneOf("log.format", l.Format, "auto", "text", "json"); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func checkOneOf(key, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	return fmt.Errorf("%s: %q is not one of %s", key, value, strings.Join(quoted, ", "))
}

func validateCertificates(certs []CertificateConfig) []error {
	var errs []error
	seen := make(map[string]int, len(certs))
	for i, cc := range certs {
		if err := checkCertName(cc.Name); err != nil {
			errs = append(errs, fmt.Errorf("certificate %d: %w", i+1, err))
		} else if first, dup := seen[cc.Name]; dup {
			errs = append(errs, &FieldError{Certificate: cc.Name, Err: errorf(ErrBadName,
				"name is also used by certificate %d; names must be unique", first)})
		} else {
			seen[cc.Name] = i + 1
		}
		errs = append(errs, checkCertificateConfig(cc)...)
	}
	return errs
}

// checkCertName accepts 1 to 128 characters from [A-Za-z0-9._-].
func checkCertName(name string) error {
	if name == "" {
		return errorf(ErrBadName, "name is empty; give every certificate a unique name")
	}
	if strings.Trim(name, ".") == "" {
		return errorf(ErrBadName, "name %q is made of dots only, which cannot be used in "+
			"an admin API path; choose a name with letters or digits", name)
	}
	if len(name) > maxNameLen {
		return errorf(ErrBadName, "name %.20q... is longer than %d characters", name, maxNameLen)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return errorf(ErrBadName,
				"name %q contains %q; use only letters, digits, '.', '_' and '-'", name, c)
		}
	}
	return nil
}

// checkCertificateConfig checks what can be checked of one certificate without
// reading files: each PEM field given once, required ones given at all, one
// passphrase source, a well-formed server name.
func checkCertificateConfig(cc CertificateConfig) []error {
	var errs []error
	fail := func(field string, err error) {
		errs = append(errs, &FieldError{Certificate: cc.Name, Field: field, Err: err})
	}
	for _, in := range inputsOf(cc) {
		switch {
		case in.file != "" && in.text != "":
			fail("", errorf(ErrBothSet, "%s and %s are both set; keep one", in.fileKey, in.pemKey))
		case in.required && in.file == "" && in.text == "":
			fail("", errorf(ErrNotSet, "neither %s nor %s is set; give the %s in one of them",
				in.fileKey, in.pemKey, in.what))
		}
	}
	if err := checkPassphraseSources(cc); err != nil {
		fail("", err)
	}
	if err := checkServerName(cc.ServerName); err != nil {
		fail("server_name", err)
	}
	return errs
}

func checkPassphraseSources(cc CertificateConfig) error {
	var set []string
	if cc.Passphrase != "" {
		set = append(set, "passphrase")
	}
	if cc.PassphraseFile != "" {
		set = append(set, "passphrase_file")
	}
	if cc.PassphraseEnv != "" {
		set = append(set, "passphrase_env")
	}
	if len(set) > 1 {
		return errorf(ErrBothSet, "%s are both set; keep one", strings.Join(set, " and "))
	}
	return nil
}

func checkServerName(name string) error {
	if name == "" {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(name), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if err := CheckHostName(host); err != nil {
		return fmt.Errorf("%q %v; write the name the upstream's certificate is issued for",
			name, err)
	}
	return nil
}

// compileRoutes compiles every route. A route naming a certificate for which
// defined returns false is an error; a nil defined accepts any name.
func compileRoutes(routes []RouteConfig, defined func(string) bool) ([]*Route, []error) {
	var (
		out  []*Route
		errs []error
	)
	for i, rc := range routes {
		r, err := compileRouteAt(i, rc, defined)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return out, errs
}

func compileRouteAt(i int, rc RouteConfig, defined func(string) bool) (*Route, error) {
	label := func() string { return fmt.Sprintf("route %d (host %q)", i+1, rc.Host) }
	r, err := CompileRoute(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label(), err)
	}
	switch {
	case rc.Certificate == "" && !rc.TLS:
		return nil, fmt.Errorf("%s: certificate is empty and tls is false, so the route "+
			"changes nothing; name a certificate or set tls = true", label())
	case rc.Certificate != "" && defined != nil && !defined(rc.Certificate):
		return nil, fmt.Errorf("%s: %w", label(), errorf(ErrUnknownCertificate,
			"certificate %q is not defined; add a [[certificate]] with name = %q or fix the name",
			rc.Certificate, rc.Certificate))
	}
	return r, nil
}
