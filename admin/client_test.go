package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        APIError
	}{
		{"API error", 409, "application/json",
			`{"error":{"code":"conflict","message":"taken","field":"name"}}`,
			APIError{Status: 409, Code: "conflict", Message: "taken", Field: "name"}},
		{"plain text from something in between", 502, "text/plain", "bad gateway\n",
			APIError{Status: 502, Code: "http_502", Message: "bad gateway"}},
		{"empty body", 503, "text/plain", "",
			APIError{Status: 503, Code: "http_503", Message: "Service Unavailable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
				r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
				}
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body)) //nolint:errcheck // test server
			}))
			defer ts.Close()
			cl := &Client{BaseURL: ts.URL + "/", Token: "tok", HTTP: ts.Client()}
			_, err := cl.Get(context.Background(), "acme")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if *ae != tc.want {
				t.Errorf("error %+v, want %+v", *ae, tc.want)
			}
		})
	}
}

func TestClientEscapesNames(t *testing.T) {
	paths := make(chan string, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.EscapedPath()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ts.Close()
	cl := &Client{BaseURL: ts.URL, HTTP: ts.Client()}
	if err := cl.Delete(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if got := <-paths; got != "/v1/certificates/a%2Fb" {
		t.Errorf("path %q, want the name escaped", got)
	}
}
