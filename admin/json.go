package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds request bodies: a certificate, its chain and a key fit in a
// few tens of kilobytes.
const MaxBodyBytes = 1 << 20

// decodeJSON reads exactly one JSON value from the body into v, refusing unknown
// fields and bodies over MaxBodyBytes.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *APIError {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return decodeError(err)
		}
		return badRequest("", "the body holds more than one JSON value; send one object")
	}
	return nil
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// decodeError explains why a body could not be decoded, naming the field when the
// decoder knows it.
func decodeError(err error) *APIError {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case tooLarge(err):
		return apiErrorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"the body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return badRequest("", "the body is empty; send a JSON object")
	case errors.As(err, &syntax):
		return badRequest("", "the body is not valid JSON (at byte %d): %v", syntax.Offset, err)
	case errors.As(err, &typeErr):
		return badRequest(typeErr.Field, "%s must be a JSON %s, not %s",
			typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "the body ends in the middle of a JSON value")
	}
	if name, ok := unknownField(err); ok {
		return badRequest(name, "unknown field %q; check the spelling against the API", name)
	}
	return badRequest("", "the body cannot be read: %v", err)
}

// unknownField extracts the name from the decoder's unknown-field error, which has
// no type of its own.
func unknownField(err error) (string, bool) {
	rest, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return "", false
	}
	return strings.Trim(rest, `"`), true
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

// writeJSON answers with v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(fmt.Sprintf(`{"error":{"code":%q,"message":"response encoding failed"}}`,
			CodeInternal))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n')) //nolint:errcheck // the client has gone; nothing to do
}

// writeError answers with e in the error envelope.
func writeError(w http.ResponseWriter, e *APIError) {
	writeJSON(w, e.Status, errorBody{Error: e})
}
