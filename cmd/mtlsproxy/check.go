package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// checkFlags declares the flags of "check"; the returned pointer holds -config.
func checkFlags(out io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "configuration `file` to validate (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: mtlsproxy check -config FILE\n\n"+
			"Loads the configuration and every certificate, key and CA it names,\n"+
			"prints one line per certificate (name, enabled, subject, not-after,\n"+
			"warnings) and exits 1 with the reason if anything is invalid.\n\n")
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
	snap, err := certconfig.LoadFile(*path)
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
// disabled, subject, not-after (RFC 3339) and its warnings joined by "; ".
func writeCertificates(w io.Writer, snap *certconfig.Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range certificateNames(snap) {
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
	return strings.Join([]string{c.Name, state, subject(c), notAfter(c), warnings}, "\t")
}

// certificateNames lists the snapshot's certificates in configuration order, then
// any others (added through the admin API) by name.
func certificateNames(snap *certconfig.Snapshot) []string {
	names := make([]string, 0, len(snap.Certificates))
	for _, n := range snap.Names {
		if _, ok := snap.Certificates[n]; ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var rest []string
	for n := range snap.Certificates {
		if !slices.Contains(names, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}
