package main

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

func TestRunCommandLine(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.toml")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring; "" means stdout must be empty
		wantStderr string // substring; "" means stderr must be empty
	}{
		{name: "no arguments", args: nil, wantCode: exitUsage, wantStderr: "Usage:"},
		{name: "help", args: []string{"help"}, wantCode: exitOK, wantStdout: "HTTP_PROXY"},
		{name: "-h", args: []string{"-h"}, wantCode: exitOK, wantStdout: "mtlsproxy serve"},
		{name: "help serve", args: []string{"help", "serve"}, wantCode: exitOK,
			wantStdout: "-listen"},
		{name: "help check", args: []string{"help", "check"}, wantCode: exitOK,
			wantStdout: "-config"},
		{name: "help unknown", args: []string{"help", "nope"}, wantCode: exitUsage,
			wantStderr: `no help for "nope"`},
		{name: "version", args: []string{"version"}, wantCode: exitOK,
			wantStdout: "mtlsproxy "},
		{name: "version -h", args: []string{"version", "-h"}, wantCode: exitOK,
			wantStderr: "usage: mtlsproxy version"},
		{name: "version bad flag", args: []string{"version", "-x"}, wantCode: exitUsage,
			wantStderr: "flag provided but not defined: -x"},
		{name: "version extra argument", args: []string{"version", "now"},
			wantCode: exitUsage, wantStderr: `unexpected argument "now"`},
		{name: "help version", args: []string{"help", "version"}, wantCode: exitOK,
			wantStdout: "usage: mtlsproxy version"},
		{name: "help certs", args: []string{"help", "certs"}, wantCode: exitOK,
			wantStdout: "usage: mtlsproxy certs"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage,
			wantStderr: `unknown command "frobnicate"`},
		{name: "check without -config", args: []string{"check"}, wantCode: exitUsage,
			wantStderr: "-config is required"},
		{name: "check -h", args: []string{"check", "-h"}, wantCode: exitOK,
			wantStderr: "usage: mtlsproxy check"},
		{name: "check bad flag", args: []string{"check", "-bogus"}, wantCode: exitUsage,
			wantStderr: "flag provided but not defined"},
		{name: "check extra argument", args: []string{"check", "-config", "a", "b"},
			wantCode: exitUsage, wantStderr: `unexpected argument "b"`},
		{name: "check missing file", args: []string{"check", "-config", missing},
			wantCode: exitError, wantStderr: "missing.toml is not valid"},
		{name: "serve without -config", args: []string{"serve"}, wantCode: exitUsage,
			wantStderr: "-config is required"},
		{name: "serve missing file", args: []string{"serve", "-config", missing},
			wantCode: exitError, wantStderr: "missing.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d\nstderr: %s", code, tt.wantCode, &stderr)
			}
			checkOutput(t, "stdout", stdout.String(), tt.wantStdout)
			checkOutput(t, "stderr", stderr.String(), tt.wantStderr)
		})
	}
}

func checkOutput(t *testing.T, name, got, want string) {
	t.Helper()
	if want == "" && got != "" {
		t.Errorf("%s = %q, want nothing", name, got)
	}
	if !strings.Contains(got, want) {
		t.Errorf("%s = %q, want it to contain %q", name, got, want)
	}
}

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	rev := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{name: "tagged module", info: debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}},
			want: "v1.4.0"},
		{name: "devel without vcs", info: debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want: "devel"},
		{name: "devel with revision", info: debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}},
		}, want: "devel-0123456789ab"},
		{name: "modified tree", info: debug.BuildInfo{
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: rev},
				{Key: "vcs.modified", Value: "true"},
			},
		}, want: "devel-0123456789ab-dirty"},
	}
	for _, tt := range tests {
		if got := fromBuildInfo(&tt.info); got != tt.want {
			t.Errorf("%s: fromBuildInfo = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLinkerVersionWins(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.9.9-test"
	if got := versionString(); !strings.HasPrefix(got, "mtlsproxy v9.9.9-test go") {
		t.Errorf("versionString() = %q, want the linker-set version first", got)
	}
}

func TestLogFormatAndLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format, level string
		wantJSON      bool
		wantLevel     slog.Level
	}{
		{format: "auto", level: "info", wantJSON: true, wantLevel: slog.LevelInfo},
		{format: "", level: "", wantJSON: true, wantLevel: slog.LevelInfo},
		{format: "text", level: "debug", wantJSON: false, wantLevel: slog.LevelDebug},
		{format: "json", level: "warn", wantJSON: true, wantLevel: slog.LevelWarn},
		{format: "JSON", level: "error", wantJSON: true, wantLevel: slog.LevelError},
	}
	for _, tt := range tests {
		var buf bytes.Buffer // not a terminal: "auto" means JSON
		log, level := newLogger(&buf, certconfig.LogConfig{Format: tt.format, Level: tt.level})
		log.Error("probe")
		gotJSON := strings.HasPrefix(buf.String(), "{")
		if gotJSON != tt.wantJSON || level.Level() != tt.wantLevel {
			t.Errorf("format %q level %q: json %v level %v; want json %v level %v",
				tt.format, tt.level, gotJSON, level.Level(), tt.wantJSON, tt.wantLevel)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Error("a regular file or a buffer was taken for a terminal")
	}
}

// testSnapshot builds a snapshot by hand, without reading any file.
func testSnapshot(certs ...*certconfig.Certificate) *certconfig.Snapshot {
	snap := &certconfig.Snapshot{
		Config:       &certconfig.Config{Path: "test.toml"},
		Certificates: map[string]*certconfig.Certificate{},
	}
	for _, c := range certs {
		snap.Certificates[c.Name] = c
		if c.Source != certconfig.SourceAPI {
			snap.Names = append(snap.Names, c.Name)
		}
	}
	return snap
}

// leafTLS is a client certificate for cn valid until notAfter, as presented.
func leafTLS(cn string, notAfter time.Time) tls.Certificate {
	root := testpki.NewRoot("check root")
	return tls.Certificate{Certificate: [][]byte{
		root.Client(testpki.Options{CommonName: cn, NotAfter: notAfter}).Cert.Raw}}
}

func TestWriteCertificates(t *testing.T) {
	t.Parallel()
	exp := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	snap := testSnapshot(
		&certconfig.Certificate{Name: "zeta", Enabled: true, TLS: leafTLS("zeta", exp), Subject: "CN=zeta,O=testpki", NotAfter: exp},
		&certconfig.Certificate{Name: "acme", Enabled: false, TLS: leafTLS("acme", exp), Subject: "CN=acme,O=testpki", NotAfter: exp,
			Warnings: []string{"expires in 3 days", "chain does not reach a root"}},
		&certconfig.Certificate{Name: "api-added", Enabled: true, TLS: leafTLS("api", exp), Subject: "CN=api,O=testpki", NotAfter: exp,
			Source: certconfig.SourceAPI},
	)
	var out bytes.Buffer
	if err := writeCertificates(&out, snap); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := [][]string{
		{"zeta", "enabled", "config", "CN=zeta,O=testpki", "2031-05-06T07:08:09Z", "-"},
		{"acme", "disabled", "config", "CN=acme,O=testpki", "2031-05-06T07:08:09Z",
			"warnings: expires in 3 days; chain does not reach a root"},
		{"api-added", "enabled", "api", "CN=api,O=testpki", "2031-05-06T07:08:09Z", "-"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), &out)
	}
	for i, fields := range want {
		line := lines[i]
		for _, f := range fields {
			if !strings.Contains(line, f) {
				t.Errorf("line %d = %q, want it to contain %q", i+1, line, f)
			}
		}
		if !strings.HasPrefix(line, fields[0]+" ") {
			t.Errorf("line %d = %q, want it to start with the name %q", i+1, line, fields[0])
		}
	}
}

func TestLogSnapshot(t *testing.T) {
	t.Parallel()
	exp := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	snap := testSnapshot(&certconfig.Certificate{Name: "acme", Enabled: true,
		TLS: leafTLS("acme", exp), Subject: "CN=acme,O=testpki", NotAfter: exp, Warnings: []string{"key file is readable by others"}})
	var buf bytes.Buffer
	log, _ := newLogger(&buf, certconfig.LogConfig{Format: "json", Level: "info"})
	logSnapshot(log, snap)

	out := buf.String()
	for _, want := range []string{
		`"msg":"certificate loaded","certificate":"acme","enabled":true`,
		`"subject":"CN=acme,O=testpki"`,
		`"not_after":"2031-01-02T03:04:05Z"`,
		`"source":"config"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s\nlog:\n%s", want, out)
		}
	}
	// The Reloader logs the warnings and the summary.
	for _, unwanted := range []string{"certificate warning", "configuration loaded"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log repeats %q\nlog:\n%s", unwanted, out)
		}
	}
}
