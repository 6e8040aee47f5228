package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// newLogger builds the process logger from the [log] table. The returned level can
// be changed later, so that a reload applies a new [log] level; the format is fixed
// for the life of the process.
func newLogger(w io.Writer, lc certconfig.LogConfig) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(parseLevel(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if useJSON(lc.Format, w) {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// parseLevel maps a [log] level to slog; anything unknown is info, since the loader
// has already rejected values it does not accept.
func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// useJSON decides the log format: "auto" and "" mean text for a person at a
// terminal, JSON for everything else (files, pipes, log collectors).
func useJSON(format string, w io.Writer) bool {
	switch strings.ToLower(format) {
	case "json":
		return true
	case "text":
		return false
	default:
		return !isTerminal(w)
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// logSnapshot writes one line per certificate loaded at start. The Reloader has
// already logged the summary and every certificate warning.
func logSnapshot(log *slog.Logger, snap *certconfig.Snapshot) {
	for _, name := range snap.OrderedNames() {
		c := snap.Certificates[name]
		log.Info("certificate loaded",
			"certificate", c.Name,
			"enabled", c.Enabled,
			"subject", c.Subject,
			"not_after", notAfter(c),
			"key_type", c.KeyType,
			"fingerprint", c.Fingerprint,
			"source", source(c))
	}
}

// notAfter is the leaf's expiry in RFC 3339 (UTC), or "" if there is no leaf.
func notAfter(c *certconfig.Certificate) string {
	if c.NotAfter.IsZero() {
		return ""
	}
	return c.NotAfter.UTC().Format(time.RFC3339)
}
