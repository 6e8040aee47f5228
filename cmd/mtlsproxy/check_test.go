package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

// checkSetup is one configuration for check and serve: the text added to the
// [proxy] and [admin] tables and after them, the admin state, and other files.
type checkSetup struct {
	proxy, admin, extra string
	state               *certconfig.State
	files               map[string]testFile
}

type testFile struct {
	data string
	mode os.FileMode
}

// write lays the setup out in a folder made by newConfigDir and returns the path
// of its config file.
func (s checkSetup) write(t *testing.T) string {
	t.Helper()
	dir := newConfigDir(t)
	body := "[proxy]\nlisten = \"127.0.0.1:0\"\n" + s.proxy + `
[egress]
allow_cidrs = ["127.0.0.0/8"]

[admin]
state_dir = "state"
` + s.admin + `
[log]
format = "json"

[[certificate]]
name = "acme"
cert_file = "acme.pem"
key_file = "acme.key"
` + s.extra
	path := filepath.Join(dir, "config.toml")
	writeTestFile(t, path, testFile{data: body})
	for name, f := range s.files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(dir, name), f)
	}
	if s.state != nil {
		writeState(t, filepath.Join(dir, "state"), *s.state)
	}
	return path
}

func writeTestFile(t *testing.T, path string, f testFile) {
	t.Helper()
	if f.mode == 0 {
		f.mode = 0o600
	}
	if err := os.WriteFile(path, []byte(f.data), f.mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile leaves the mode of an existing file and applies the umask.
	if err := os.Chmod(path, f.mode); err != nil {
		t.Fatal(err)
	}
}

// writeState writes st as the admin API would keep it in dir.
func writeState(t *testing.T, dir string, st certconfig.State) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, certconfig.StateFileName), testFile{data: string(data)})
}

// apiState holds one certificate added through the admin API under name.
func apiState(name string) *certconfig.State {
	c := testpki.NewRoot("api root").Client(testpki.Options{CommonName: name})
	return &certconfig.State{Version: 1, Certificates: map[string]certconfig.StoredCertificate{
		name: {CertPEM: string(c.CertPEM()), KeyPEM: string(c.KeyPEM()), Enabled: true,
			Created: time.Now()},
	}}
}

func routeTo(name string) string {
	return "\n[[route]]\nhost = \"hooks.example\"\ncertificate = \"" + name + "\"\n"
}

const token = "0123456789abcdef0123456789abcdef"

func TestCheckAcceptsWhatServeLoads(t *testing.T) {
	t.Parallel()
	deleted := &certconfig.State{Version: 1,
		Deleted: map[string]time.Time{"gone": time.Now()}}
	tests := []struct {
		name        string
		setup       checkSetup
		wantLines   []string // each a substring of one line of stdout, in order
		wantNoState bool     // the state folder must still not exist
	}{
		{name: "route to a certificate added through the API",
			setup:     checkSetup{state: apiState("beta"), extra: routeTo("beta")},
			wantLines: []string{"acme  enabled  config  CN=acme", "beta  enabled  api     CN=beta"}},
		{name: "route to a certificate deleted through the API",
			setup:     checkSetup{state: deleted, extra: routeTo("gone")},
			wantLines: []string{"acme  enabled  config"}},
		{name: "missing state folder is not created",
			setup:     checkSetup{extra: routeTo("acme")},
			wantLines: []string{"acme  enabled  config"}, wantNoState: true},
		{name: "admin disabled: no state, no token files",
			setup: checkSetup{admin: "disabled = true\ntoken_file = \"missing.token\"\n",
				state: apiState("acme")},
			wantLines: []string{"acme  enabled  config"}},
		{name: "tokens of both kinds",
			setup: checkSetup{
				admin: "token_file = \"admin.token\"\nread_token_file = \"read.token\"\n",
				files: map[string]testFile{"admin.token": {data: token + "\n"},
					"read.token": {data: "another-token"}}},
			wantLines: []string{"acme  enabled  config"}},
		{name: "non-loopback listen with a token",
			setup: checkSetup{admin: "listen = \"0.0.0.0:9901\"\ntoken_file = \"admin.token\"\n",
				files: map[string]testFile{"admin.token": {data: token}}},
			wantLines: []string{"acme  enabled  config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.setup.write(t)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "-config", path}, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit status %d, want %d\nstderr: %s", code, exitOK, &stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tt.wantLines), &stdout)
			}
			for i, want := range tt.wantLines {
				if !strings.Contains(lines[i], want) {
					t.Errorf("line %d = %q, want it to contain %q", i+1, lines[i], want)
				}
			}
			state := filepath.Join(filepath.Dir(path), "state")
			if _, err := os.Stat(state); tt.wantNoState && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("check made the state folder (stat: %v)", err)
			}
		})
	}
}

// TestCheckRefusesWhatServeRefuses runs check and serve on each configuration:
// both must fail, and say the same thing.
func TestCheckRefusesWhatServeRefuses(t *testing.T) {
	t.Parallel()
	tokenFile := "token_file = \"admin.token\"\n"
	tests := []struct {
		name  string
		setup checkSetup
		want  string
	}{
		{name: "route to an unknown certificate",
			setup: checkSetup{extra: routeTo("nope")},
			want:  "certificate is not defined"},
		{name: "name of the file also added through the API",
			setup: checkSetup{state: apiState("acme")},
			want:  "defined in the config file and also added through the admin API"},
		{name: "state folder is a file",
			setup: checkSetup{files: map[string]testFile{"state": {}}},
			want:  "admin.state_dir: mkdir "},
		{name: "state file is not JSON",
			setup: checkSetup{files: map[string]testFile{"state/state.json": {data: "{"}}},
			want:  "state.json is not valid JSON"},
		{name: "auth file missing",
			setup: checkSetup{proxy: "auth_file = \"users.txt\"\n"},
			want:  "[proxy] auth_file"},
		{name: "token file missing",
			setup: checkSetup{admin: tokenFile},
			want:  "admin.token_file: token file: stat "},
		{name: "token file empty",
			setup: checkSetup{admin: tokenFile,
				files: map[string]testFile{"admin.token": {data: "\n"}}},
			want: "is empty; write a long random token into it"},
		{name: "token file readable by others",
			setup: checkSetup{admin: tokenFile,
				files: map[string]testFile{"admin.token": {data: token, mode: 0o644}}},
			want: "is readable by group or others (mode 0644)"},
		{name: "read token file missing",
			setup: checkSetup{admin: "read_token_file = \"read.token\"\n"},
			want:  "admin.read_token_file: token file: stat "},
		{name: "same token twice",
			setup: checkSetup{
				admin: tokenFile + "read_token_file = \"read.token\"\n",
				files: map[string]testFile{"admin.token": {data: token},
					"read.token": {data: token}}},
			want: "admin.read_token_file holds the same token as admin.token_file"},
		{name: "non-loopback listen without a token",
			setup: checkSetup{admin: "listen = \"0.0.0.0:9901\"\n"},
			want:  "admin.listen 0.0.0.0:9901 is not loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.setup.write(t)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "-config", path}, &stdout, &stderr); code != exitError {
				t.Errorf("check: exit status %d, want %d", code, exitError)
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "mtlsproxy check: "+path+" is not valid: ") ||
				!strings.Contains(msg, tt.want) || strings.Count(msg, "\n") != 1 {
				t.Errorf("check: stderr = %q, want one line containing %q", msg, tt.want)
			}

			var logs syncBuffer
			o := serveOptions{configPath: path, stderr: &logs, signals: make(chan os.Signal)}
			if code := serve(o); code != exitError {
				t.Errorf("serve: exit status %d, want %d", code, exitError)
			}
			if !strings.Contains(logs.String(), tt.want) {
				t.Errorf("serve does not say %q:\n%s", tt.want, logs.String())
			}
		})
	}
}
