package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// cliResult is what a command prints: a headline in text mode, then value, which
// is also what -json prints.
type cliResult struct {
	headline string
	value    any
}

func runList(ctx context.Context, cl *Client, _ string, _ *material) (*cliResult, error) {
	l, err := cl.List(ctx)
	if err != nil {
		return nil, err
	}
	return &cliResult{value: l}, nil
}

func runShow(ctx context.Context, cl *Client, name string, _ *material) (*cliResult, error) {
	v, err := cl.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return &cliResult{value: v}, nil
}

func runAdd(ctx context.Context, cl *Client, name string, m *material) (*cliResult, error) {
	req, err := m.addRequest(name)
	if err != nil {
		return nil, err
	}
	v, err := cl.Add(ctx, *req)
	if err != nil {
		return nil, err
	}
	return &cliResult{headline: "added " + name, value: v}, nil
}

func runReplace(ctx context.Context, cl *Client, name string, m *material) (*cliResult,
	error) {
	req, err := m.replaceRequest()
	if err != nil {
		return nil, err
	}
	v, err := cl.Replace(ctx, name, *req)
	if err != nil {
		return nil, err
	}
	return &cliResult{headline: "replaced the material of " + name, value: v}, nil
}

func runEnable(ctx context.Context, cl *Client, name string, _ *material) (*cliResult, error) {
	v, err := cl.Enable(ctx, name)
	if err != nil {
		return nil, err
	}
	return &cliResult{headline: "enabled " + name, value: v}, nil
}

func runDisable(ctx context.Context, cl *Client, name string, _ *material) (*cliResult,
	error) {
	v, err := cl.Disable(ctx, name)
	if err != nil {
		return nil, err
	}
	return &cliResult{headline: "disabled " + name, value: v}, nil
}

func runDelete(ctx context.Context, cl *Client, name string, _ *material) (*cliResult, error) {
	if err := cl.Delete(ctx, name); err != nil {
		return nil, err
	}
	return &cliResult{headline: "deleted " + name, value: map[string]string{"deleted": name}},
		nil
}

// replaceRequest reads the files named by the material flags.
func (m *material) replaceRequest() (*ReplaceRequest, error) {
	var req ReplaceRequest
	var err error
	if req.CertificatePEM, err = readPEMFile("-cert", m.cert); err != nil {
		return nil, err
	}
	if req.PrivateKeyPEM, err = readPEMFile("-key", m.key); err != nil {
		return nil, err
	}
	// Only what was given is sent: the server keeps the stored chain and
	// passphrase for fields left out, and clears them when they are empty.
	empty := ""
	if m.noCA {
		req.CAPEM = &empty
	}
	if m.noPassphrase {
		req.Passphrase = &empty
	}
	if m.ca != "" {
		ca, err := readPEMFile("-ca", m.ca)
		if err != nil {
			return nil, err
		}
		req.CAPEM = &ca
	}
	if m.passFile != "" {
		pass, err := readPassphrase(m.passFile)
		if err != nil {
			return nil, err
		}
		req.Passphrase = &pass
	}
	return &req, nil
}

func (m *material) addRequest(name string) (*AddRequest, error) {
	r, err := m.replaceRequest()
	if err != nil {
		return nil, err
	}
	serverCA, err := readPEMFile("-server-ca", m.serverCA)
	if err != nil {
		return nil, err
	}
	enabled := !m.disabled
	return &AddRequest{
		Name:               name,
		CertificatePEM:     r.CertificatePEM,
		PrivateKeyPEM:      r.PrivateKeyPEM,
		Passphrase:         deref(r.Passphrase),
		CAPEM:              deref(r.CAPEM),
		ServerName:         m.serverName,
		ServerCAPEM:        serverCA,
		InsecureSkipVerify: m.insecure,
		Enabled:            &enabled,
	}, nil
}

func readPEMFile(flagName, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	return string(data), nil
}

// readPassphrase reads a passphrase file without its final line break; other
// whitespace may belong to the passphrase.
func readPassphrase(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-passphrase-file: %w", err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// printResult writes r as indented JSON or as text for people.
func printResult(w io.Writer, asJSON bool, r *cliResult) error {
	if asJSON {
		data, err := json.MarshalIndent(r.value, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the answer: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	}
	if r.headline != "" {
		fmt.Fprintln(w, r.headline)
	}
	switch v := r.value.(type) {
	case *ListResponse:
		return writeList(w, v)
	case *CertificateView:
		return writeView(w, v)
	}
	return nil
}

// writeList prints one aligned line per certificate, then the dangling routes and
// a failed last reload, which an operator should not miss.
func writeList(w io.Writer, l *ListResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENABLED\tSOURCE\tNOT AFTER\tWARNINGS")
	for _, c := range l.Certificates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, yesNo(c.Enabled), c.Source,
			c.NotAfter, warningSummary(c.Warnings))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range l.DanglingRoutes {
		fmt.Fprintf(w, "dangling route: %s names missing certificate %q\n",
			hostPort(r), r.Certificate)
	}
	if l.LastReload.At != "" && !l.LastReload.Success {
		fmt.Fprintf(w, "last reload failed at %s: %s\n", l.LastReload.At, l.LastReload.Error)
	}
	return nil
}

func warningSummary(ws []string) string {
	switch len(ws) {
	case 0:
		return "-"
	case 1:
		return ws[0]
	}
	return fmt.Sprintf("%d: %s", len(ws), ws[0])
}

// writeView prints one certificate as aligned "key: value" lines.
func writeView(w io.Writer, v *CertificateView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, val string) { fmt.Fprintf(tw, "%s:\t%s\n", k, val) }
	row("name", v.Name)
	row("enabled", yesNo(v.Enabled))
	row("source", v.Source)
	row("subject", v.Subject)
	row("issuer", v.Issuer)
	row("sans", sanSummary(v.SANs))
	row("serial", v.Serial)
	row("not before", v.NotBefore)
	row("not after", v.NotAfter)
	row("sha256", v.SHA256Fingerprint)
	row("key type", v.KeyType)
	row("chain", orDash(strings.Join(v.Chain, "; ")))
	row("server name", orDash(v.ServerName))
	row("insecure", yesNo(v.InsecureSkipVerify))
	row("routes", routeSummary(v.Routes))
	for _, warn := range v.Warnings {
		row("warning", warn)
	}
	return tw.Flush()
}

func sanSummary(s SANs) string {
	var all []string
	all = append(all, s.DNS...)
	all = append(all, s.IP...)
	all = append(all, s.Email...)
	all = append(all, s.URI...)
	return orDash(strings.Join(all, ", "))
}

func routeSummary(rs []RouteView) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = hostPort(r)
	}
	return orDash(strings.Join(parts, ", "))
}

func hostPort(r RouteView) string {
	if r.Port == 0 {
		return r.Host
	}
	return net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
