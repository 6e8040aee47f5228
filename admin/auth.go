package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
)

// Roles a bearer token gives.
const (
	RoleAdmin = "admin" // may read and change
	RoleRead  = "read"  // may only read
)

// ReadTokenFile reads a bearer token from path, trimming surrounding whitespace.
// It refuses an empty file and, outside Windows, a file that users other than its
// owner may read, since whoever reads the token controls the certificates.
func ReadTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s is readable by group or others (mode %#o); "+
			"run chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty; write a long random token into it, "+
			"for example with: openssl rand -hex 32 > %s", path, path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s holds more than one word; keep only the token",
			path)
	}
	return tok, nil
}

// tokenSum is what tokens are compared by: equal-length digests, so the comparison
// takes the same time whatever the length of the token presented.
type tokenSum [sha256.Size]byte

func sumToken(tok string) *tokenSum {
	if tok == "" {
		return nil
	}
	s := tokenSum(sha256.Sum256([]byte(tok)))
	return &s
}

func (s *tokenSum) matches(presented tokenSum) bool {
	return s != nil && subtle.ConstantTimeCompare(s[:], presented[:]) == 1
}

type roleKey struct{}

// roleOf returns the role the request was authorised with.
func roleOf(r *http.Request) string {
	role, _ := r.Context().Value(roleKey{}).(string)
	return role
}

// role returns the role of the request's bearer token, or "" when it has none
// or an unknown one. Both tokens are always compared.
func (s *Server) role(r *http.Request) string {
	tok, ok := bearer(r)
	if !ok {
		return ""
	}
	sum := tokenSum(sha256.Sum256([]byte(tok)))
	isAdmin := s.token.matches(sum)
	isRead := s.readToken.matches(sum)
	switch {
	case isAdmin:
		return RoleAdmin
	case isRead:
		return RoleRead
	}
	return ""
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// require wraps h so that it runs only for a token whose role is at least need.
func (s *Server) require(need string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		role := s.role(r)
		if e := s.authError(need, role); e != nil {
			if e.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mtlsproxy admin"`)
			}
			s.log.Info("admin request refused", "method", r.Method, "path", r.URL.Path,
				"role", role, "remote", r.RemoteAddr, "status", e.Status)
			writeError(w, e)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), roleKey{}, role)))
	}
}

func (s *Server) authError(need, role string) *APIError {
	switch {
	case s.token == nil && s.readToken == nil:
		return apiErrorf(http.StatusUnauthorized, CodeUnauthorized, "no admin token is "+
			"configured; set admin.token_file (and optionally admin.read_token_file) "+
			"to use the admin API")
	case role == "":
		return apiErrorf(http.StatusUnauthorized, CodeUnauthorized, "a valid bearer token "+
			"is required: send Authorization: Bearer <token from admin.token_file>")
	case need == RoleAdmin && role != RoleAdmin:
		return apiErrorf(http.StatusForbidden, CodeForbidden, "the read-only token may not "+
			"make changes; use the token from admin.token_file")
	}
	return nil
}
