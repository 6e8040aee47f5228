package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// Error codes of the admin API. Scripts match on them; keep them stable.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeValidationFailed = "validation_failed"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "too_large"
	CodeNotReady         = "not_ready"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// APIError is the error body of every failed admin call, and what Client returns
// when the server answers with one.
type APIError struct {
	// Status is the HTTP status the server answered with. It is not part of the body.
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

// Error reads "code: message", with the field when there is one.
func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// errorBody is the JSON envelope of an APIError.
type errorBody struct {
	Error *APIError `json:"error"`
}

func apiErrorf(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(field, format string, args ...any) *APIError {
	e := apiErrorf(http.StatusBadRequest, CodeInvalidRequest, format, args...)
	e.Field = field
	return e
}

func invalid(field, format string, args ...any) *APIError {
	e := apiErrorf(http.StatusBadRequest, CodeValidationFailed, format, args...)
	e.Field = field
	return e
}

func notFound(name string) *APIError {
	return apiErrorf(http.StatusNotFound, CodeNotFound,
		"certificate %q does not exist; GET /v1/certificates lists the names", name)
}

func conflict(format string, args ...any) *APIError {
	return apiErrorf(http.StatusConflict, CodeConflict, format, args...)
}

// apiFields maps the configuration keys a *certconfig.FieldError names to the
// fields of the admin API's request bodies.
var apiFields = map[string]string{
	"name":            "name",
	"cert_pem":        "certificate_pem",
	"cert_file":       "certificate_pem",
	"key_pem":         "private_key_pem",
	"key_file":        "private_key_pem",
	"passphrase":      "passphrase",
	"passphrase_file": "passphrase",
	"passphrase_env":  "passphrase",
	"ca_pem":          "ca_pem",
	"ca_file":         "ca_pem",
	"server_name":     "server_name",
	"server_ca_pem":   "server_ca_pem",
	"server_ca_file":  "server_ca_pem",
}

// fieldOf names the API field of fe, from the kind of error when the loader did
// not name a field.
func fieldOf(fe *certconfig.FieldError) string {
	// A passphrase problem is reported on the key, but the passphrase is what to fix.
	if errors.Is(fe.Err, certconfig.ErrWrongPassphrase) ||
		errors.Is(fe.Err, certconfig.ErrPassphraseRequired) {
		return "passphrase"
	}
	if f, ok := apiFields[fe.Field]; ok {
		return f
	}
	switch {
	case errors.Is(fe.Err, certconfig.ErrBadName):
		return "name"
	case errors.Is(fe.Err, certconfig.ErrKeyMismatch):
		return "private_key_pem"
	}
	return ""
}

// fieldErrors collects every *certconfig.FieldError in err's tree, since the
// loader joins the problems of several fields into one error.
func fieldErrors(err error) []*certconfig.FieldError {
	if fe, ok := err.(*certconfig.FieldError); ok {
		return []*certconfig.FieldError{fe}
	}
	var out []*certconfig.FieldError
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
	case interface{ Unwrap() error }:
		out = fieldErrors(u.Unwrap())
	}
	return out
}

// validationError turns a certificate build error into a 400 that names the API
// field and gives the loader's reason. It returns nil when err carries no
// *certconfig.FieldError. Secrets that might have slipped into a message are masked.
func validationError(err error, secrets ...string) *APIError {
	fes := fieldErrors(err)
	if len(fes) == 0 {
		return nil
	}
	reasons := make([]string, 0, len(fes))
	for i, fe := range fes {
		r := fe.Err.Error()
		if f := fieldOf(fe); f != "" && i > 0 {
			r = f + ": " + r
		}
		reasons = append(reasons, r)
	}
	msg := mask(apiWording.Replace(strings.Join(reasons, "; ")), secrets...)
	return invalid(fieldOf(fes[0]), "%s", msg)
}

// apiWording rewrites the config file's key names in the loader's messages to the
// API's field names, longest phrases first.
var apiWording = strings.NewReplacer(
	"cert_file nor cert_pem", "certificate_pem",
	"cert_file or cert_pem", "certificate_pem",
	"key_file or key_pem", "private_key_pem",
	"ca_file or ca_pem", "ca_pem",
	"server_ca_file or server_ca_pem", "server_ca_pem",
	"passphrase_file or passphrase_env", "passphrase",
	"passphrase_file and passphrase_env", "passphrase",
	"server_ca_file", "server_ca_pem",
	"cert_file", "certificate_pem", "cert_pem", "certificate_pem",
	"key_file", "private_key_pem", "key_pem", "private_key_pem",
	"ca_file", "ca_pem",
	"passphrase_file", "passphrase", "passphrase_env", "passphrase",
)

// mask replaces every secret of eight characters or more in s. The loader never
// puts a passphrase in its messages; this is a second line of defence. Shorter
// secrets are left alone: masking a word like "wrong" would garble the message
// and show which word the passphrase was.
func mask(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
