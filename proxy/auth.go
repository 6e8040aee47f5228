package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// AuthRealm is the realm the proxy names in Proxy-Authenticate.
const AuthRealm = "mtlsproxy"

// sha256Prefix marks a password written as the hex SHA-256 of the real one.
const sha256Prefix = "{SHA256}"

// maxAuthFileBytes bounds what is read of an auth file; a real one is far smaller.
const maxAuthFileBytes = 1 << 20

// authenticator checks Proxy-Authorization against the users of [proxy] auth_file.
// A nil *authenticator lets every request through.
//
// The file holds one "user:password" per line; the user ends at the first colon,
// so a password may hold colons. A password written "{SHA256}" followed by 64 hex
// digits is the SHA-256 of the real password. Blank lines and lines starting with
// "#" are skipped. Every password is kept as its SHA-256 and compared in constant
// time. An unsalted hash only hides the password from a casual reader of the file:
// protect the file like the passwords themselves.
type authenticator struct {
	users map[string][sha256.Size]byte
}

// loadAuth reads the auth file that c names; nil, nil when none is set.
func loadAuth(c *certconfig.Config) (*authenticator, error) {
	if c == nil || c.Proxy.AuthFile == "" {
		return nil, nil
	}
	path := c.Resolve(c.Proxy.AuthFile)
	a, err := readAuthFile(path)
	if err != nil {
		return nil, fmt.Errorf("[proxy] auth_file %q: %w", path, err)
	}
	return a, nil
}

func readAuthFile(path string) (*authenticator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file holds passwords: refuse it when others may read it, as the admin
	// token files are refused.
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("is readable by group or others (mode %04o); "+
			"run chmod 600 on it", st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAuthFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxAuthFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxAuthFileBytes)
	}
	return parseAuth(data)
}

// parseAuth reads the lines of an auth file. Errors name the line but never
// repeat its text, which holds a password.
func parseAuth(data []byte) (*authenticator, error) {
	a := &authenticator{users: map[string][sha256.Size]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxAuthFileBytes)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if trimmed := strings.TrimSpace(text); trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if err := a.add(text); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(a.users) == 0 {
		return nil, errors.New(`no users; write one "user:password" per line`)
	}
	return a, nil
}

func (a *authenticator) add(line string) error {
	user, password, ok := strings.Cut(line, ":")
	switch {
	case !ok:
		return errors.New(`no ":" between user and password`)
	case user == "":
		return errors.New("the user name is empty")
	case password == "":
		return fmt.Errorf("user %q: the password is empty", user)
	}
	if _, dup := a.users[user]; dup {
		return fmt.Errorf("user %q is listed twice", user)
	}
	digest, err := passwordDigest(password)
	if err != nil {
		return fmt.Errorf("user %q: %w", user, err)
	}
	a.users[user] = digest
	return nil
}

func passwordDigest(password string) ([sha256.Size]byte, error) {
	var digest [sha256.Size]byte
	hexText, hashed := strings.CutPrefix(password, sha256Prefix)
	if !hashed {
		return sha256.Sum256([]byte(password)), nil
	}
	b, err := hex.DecodeString(strings.TrimSpace(hexText))
	if err != nil || len(b) != sha256.Size {
		return digest, fmt.Errorf("%s must be followed by %d hex digits", sha256Prefix,
			2*sha256.Size)
	}
	copy(digest[:], b)
	return digest, nil
}

// check returns the user that h's Proxy-Authorization names, and whether its
// password is right. A request must carry exactly one such header.
func (a *authenticator) check(h http.Header) (string, bool) {
	values := h.Values("Proxy-Authorization")
	if len(values) != 1 {
		return "", false
	}
	user, password, ok := parseBasic(values[0])
	if !ok {
		return "", false
	}
	want, known := a.users[user]
	got := sha256.Sum256([]byte(password))
	// Compare even for an unknown user, so that both take the same time.
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return user, known && match
}

// parseBasic reads "Basic base64(user:password)"; the scheme is not case-sensitive.
func parseBasic(v string) (user, password string, ok bool) {
	scheme, encoded, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}
