package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mtlsproxy/mtlsproxy/admin"
	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// checkFlags declares the flags of "check"; the returned pointer holds -config.
func checkFlags(out io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "configuration `file` to validate (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: mtlsproxy check -config FILE\n\n"+
			"Loads the configuration as serve would: every certificate, key and CA\n"+
			"it names, the admin API's state and token files. Prints one line per\n"+
			"certificate (name, enabled, source, subject, not-after, warnings) and\n"+
			"exits 1 with the reason if anything is invalid. Nothing is written.\n\n")
		fs.PrintDefaults()
	}
	return fs, path
}

// runCheck implements "mtlsproxy check".
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := checkFlags(stderr)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *path == "" {
		fmt.Fprint(stderr, "mtlsproxy check: -config is required\n\n")
		fs.Usage()
		return exitUsage
	}
	snap, err := checkConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mtlsproxy check: %s is not valid: %v\n", *path, err)
		return exitError
	}
	if len(snap.Certificates) == 0 {
		fmt.Fprintf(stderr, "mtlsproxy check: %s is valid but defines no certificate\n", *path)
		return exitOK
	}
	if err := writeCertificates(stdout, snap); err != nil {
		fmt.Fprintf(stderr, "mtlsproxy check: %v\n", err)
		return exitError
	}
	return exitOK
}

// checkConfig loads path as serve does at start, with the admin state and the
// proxy's own checks, and builds the admin server serve would build, so that it
// refuses what serve refuses. It creates nothing, listens nowhere and logs nothing.
// The snapshot holds the certificates added through the admin API too.
func checkConfig(path string) (*certconfig.Snapshot, error) {
	cfg, err := readBootConfig(path)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	rel, loadErr := firstLoad(path, cfg, quiet, readStore, "check")
	if err := errors.Join(loadErr, checkAdmin(cfg, quiet)); err != nil {
		return nil, err
	}
	return rel.Current.Load(), nil
}

// readStore reads the admin state in dir as certconfig.OpenStore does, except that
// a missing folder, which serve would create empty, is read as empty rather than
// created.
func readStore(dir string) (*certconfig.Store, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// The zero Store holds the empty state; check never saves to it.
		return new(certconfig.Store), nil
	}
	return certconfig.OpenStore(dir)
}

// checkAdmin builds the admin server from cfg without listening: the token files
// must be readable, private and not empty, the two tokens must differ, and an
// address other than loopback needs a change token.
func checkAdmin(cfg *certconfig.Config, log *slog.Logger) error {
	if cfg.Admin.Disabled {
		return nil
	}
	o, err := adminOptions(cfg)
	if err != nil {
		return err
	}
	o.Current, o.Logger = new(certconfig.Current), log
	_, err = admin.New(o)
	return err
}

// parseFlags parses args; done is true when the caller must return code at once
// (help was asked for, or the command line is wrong).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	case err != nil:
		return exitUsage, true
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "mtlsproxy %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, true
	}
	return exitOK, false
}

// writeCertificates prints one aligned line per certificate: name, enabled or
// disabled, where it is defined, subject, not-after (RFC 3339) and its warnings
// joined by "; ".
func writeCertificates(w io.Writer, snap *certconfig.Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range snap.OrderedNames() {
		fmt.Fprintln(tw, certificateLine(snap.Certificates[name]))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write certificate list: %w", err)
	}
	return nil
}

// certificateLine is one tab-separated line of the check output.
func certificateLine(c *certconfig.Certificate) string {
	state := "enabled"
	if !c.Enabled {
		state = "disabled"
	}
	warnings := "-"
	if len(c.Warnings) > 0 {
		warnings = "warnings: " + strings.Join(c.Warnings, "; ")
	}
	return strings.Join([]string{c.Name, state, source(c), c.Subject, notAfter(c), warnings},
		"\t")
}

// source says where c is defined: "config" (the TOML file) or "api" (added
// through the admin API and kept in the state folder).
func source(c *certconfig.Certificate) string {
	if c.Source == "" {
		return certconfig.SourceConfig
	}
	return c.Source
}
