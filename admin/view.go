package admin

import (
	"crypto/x509"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// CertificateView is what the admin API shows of a certificate. It never holds the
// private key or the passphrase.
type CertificateView struct {
	Name               string      `json:"name"`
	Enabled            bool        `json:"enabled"`
	Source             string      `json:"source"` // "config" or "api"
	Subject            string      `json:"subject"`
	Issuer             string      `json:"issuer"`
	SANs               SANs        `json:"sans"`
	Serial             string      `json:"serial"`
	NotBefore          string      `json:"not_before"` // RFC 3339, UTC
	NotAfter           string      `json:"not_after"`  // RFC 3339, UTC
	SHA256Fingerprint  string      `json:"sha256_fingerprint"`
	KeyType            string      `json:"key_type"`
	Chain              []string    `json:"chain"` // subjects presented after the leaf
	ServerName         string      `json:"server_name"`
	InsecureSkipVerify bool        `json:"insecure_skip_verify"`
	Routes             []RouteView `json:"routes"`
	Warnings           []string    `json:"warnings"`
}

// SANs are the subject alternative names of a certificate.
type SANs struct {
	DNS   []string `json:"dns"`
	IP    []string `json:"ip"`
	Email []string `json:"email"`
	URI   []string `json:"uri"`
}

// RouteView is a route as the admin API shows it. Port 0 means any port.
type RouteView struct {
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Certificate string `json:"certificate,omitempty"`
	TLS         bool   `json:"tls"`
}

// ReloadView is the outcome of the latest configuration load.
type ReloadView struct {
	At      string `json:"at,omitempty"` // RFC 3339, UTC; empty before the first load
	Success bool   `json:"success"`
	Error   string `json:"error,omitempty"`
}

// ListResponse is the body of GET /v1/certificates.
type ListResponse struct {
	Certificates []CertificateView `json:"certificates"`
	// DanglingRoutes are routes naming a certificate that does not exist (any more).
	DanglingRoutes []RouteView `json:"dangling_routes"`
	LastReload     ReloadView  `json:"last_reload"`
}

// listView shows every certificate of snap in configuration order.
func listView(snap *certconfig.Snapshot, st certconfig.ReloadStatus, now time.Time) ListResponse {
	out := ListResponse{
		Certificates:   []CertificateView{},
		DanglingRoutes: danglingRoutes(snap),
		LastReload:     reloadView(st),
	}
	// Routes are grouped once: asking each of 10,000 certificates to scan 10,000
	// routes made the list take seconds.
	routes := map[string][]RouteView{}
	for _, r := range snap.Routes {
		routes[r.Certificate] = append(routes[r.Certificate], routeView(r))
	}
	for _, name := range snap.OrderedNames() {
		c := snap.Certificates[name]
		out.Certificates = append(out.Certificates, viewOf(c, routes[name], now))
	}
	return out
}

func danglingRoutes(snap *certconfig.Snapshot) []RouteView {
	out := []RouteView{}
	for _, r := range snap.Routes {
		if _, ok := snap.Certificates[r.Certificate]; r.Certificate != "" && !ok {
			out = append(out, RouteView{Host: r.Host, Port: r.Port, Certificate: r.Certificate,
				TLS: r.TLS})
		}
	}
	return out
}

func reloadView(st certconfig.ReloadStatus) ReloadView {
	v := ReloadView{Success: st.Success, Error: st.Err}
	if !st.At.IsZero() {
		v.At = st.At.UTC().Format(time.RFC3339)
	}
	return v
}

// certificateView shows c, with warnings about its dates computed for now.
func certificateView(snap *certconfig.Snapshot, c *certconfig.Certificate,
	now time.Time) CertificateView {
	return viewOf(c, routesOf(snap, c.Name), now)
}

// viewOf shows c with the routes that name it.
func viewOf(c *certconfig.Certificate, routes []RouteView, now time.Time) CertificateView {
	if routes == nil {
		routes = []RouteView{}
	}
	v := CertificateView{
		Name:               c.Name,
		Enabled:            c.Enabled,
		Source:             c.Source,
		SHA256Fingerprint:  c.Fingerprint,
		KeyType:            c.KeyType,
		Chain:              []string{},
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify,
		Routes:             routes,
		Warnings:           c.WarningsAt(now),
	}
	if leaf := c.Leaf(); leaf != nil {
		v.Subject = c.Subject
		v.Issuer = leaf.Issuer.String()
		v.SANs = sansOf(leaf)
		v.Serial = serialOf(leaf)
		v.NotBefore = c.NotBefore.UTC().Format(time.RFC3339)
		v.NotAfter = c.NotAfter.UTC().Format(time.RFC3339)
	}
	for _, ch := range c.Chain {
		v.Chain = append(v.Chain, ch.Subject.String())
	}
	return v
}

func routesOf(snap *certconfig.Snapshot, name string) []RouteView {
	out := []RouteView{}
	for _, r := range snap.Routes {
		if r.Certificate == name {
			out = append(out, routeView(r))
		}
	}
	return out
}

// routeView shows a route from the side of the certificate it names.
func routeView(r *certconfig.Route) RouteView {
	return RouteView{Host: r.Host, Port: r.Port, TLS: r.TLS}
}

func sansOf(c *x509.Certificate) SANs {
	s := SANs{DNS: []string{}, IP: []string{}, Email: []string{}, URI: []string{}}
	s.DNS = append(s.DNS, c.DNSNames...)
	s.Email = append(s.Email, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		s.IP = append(s.IP, ip.String())
	}
	for _, u := range c.URIs {
		s.URI = append(s.URI, u.String())
	}
	return s
}

// serialOf writes the serial number as colon-separated hex pairs, as most tools do.
func serialOf(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	b := c.SerialNumber.Bytes()
	if len(b) == 0 {
		return "00"
	}
	return certconfig.ColonHex(b)
}
