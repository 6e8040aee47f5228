package admin

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr string
	}{
		{"trimmed", "  s3cret-token \n", 0o600, "s3cret-token", ""},
		{"owner read-only", "tok", 0o400, "tok", ""},
		{"empty", "", 0o600, "", "is empty"},
		{"blank", " \n\t\n", 0o600, "", "is empty"},
		{"two words", "zq9first zq9second\n", 0o600, "", "more than one word"},
		{"world readable", "zq9-secret", 0o644, "", "chmod 600"},
		{"group readable", "zq9-secret", 0o640, "", "readable by group or others"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tc.mode&0o077 != 0 {
				t.Skip("modes are not checked on Windows")
			}
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := ReadTokenFile(path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case got != tc.want:
				t.Fatalf("token %q, want %q", got, tc.want)
			}
			if err != nil && tc.content != "" && strings.Contains(err.Error(), tc.content) {
				t.Errorf("error %q shows the file's content", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, err := ReadTokenFile(filepath.Join(dir, "absent")); err == nil {
			t.Fatal("no error for a missing file")
		}
	})
}
