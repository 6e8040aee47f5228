package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultAdminURL is where the client looks for the admin API by default.
const DefaultAdminURL = "http://127.0.0.1:9901"

// defaultClientTimeout bounds one call when Client.HTTP is nil.
const defaultClientTimeout = 30 * time.Second

// Client calls the admin API. Errors the server answers with are *APIError.
type Client struct {
	// BaseURL is the API's root, such as "http://127.0.0.1:9901".
	BaseURL string
	// Token is sent as a bearer token when set.
	Token string
	// HTTP makes the requests; nil means a client with a 30 second timeout.
	HTTP *http.Client
}

// List returns every certificate, the routes naming missing ones and the last
// reload's outcome.
func (c *Client) List(ctx context.Context) (*ListResponse, error) {
	var out ListResponse
	if err := c.call(ctx, http.MethodGet, "/v1/certificates", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get returns the certificate called name.
func (c *Client) Get(ctx context.Context, name string) (*CertificateView, error) {
	return c.view(ctx, http.MethodGet, certPath(name, ""), nil)
}

// Add adds a certificate and returns it as the server now shows it.
func (c *Client) Add(ctx context.Context, req AddRequest) (*CertificateView, error) {
	return c.view(ctx, http.MethodPost, "/v1/certificates", req)
}

// Replace swaps the key material of the certificate called name.
func (c *Client) Replace(ctx context.Context, name string,
	req ReplaceRequest) (*CertificateView, error) {
	return c.view(ctx, http.MethodPut, certPath(name, "/material"), req)
}

// Enable makes the certificate called name presented again.
func (c *Client) Enable(ctx context.Context, name string) (*CertificateView, error) {
	return c.view(ctx, http.MethodPost, certPath(name, "/enable"), nil)
}

// Disable stops the certificate called name from being presented.
func (c *Client) Disable(ctx context.Context, name string) (*CertificateView, error) {
	return c.view(ctx, http.MethodPost, certPath(name, "/disable"), nil)
}

// Delete removes the certificate called name.
func (c *Client) Delete(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, certPath(name, ""), nil, nil)
}

func certPath(name, suffix string) string {
	return "/v1/certificates/" + url.PathEscape(name) + suffix
}

func (c *Client) view(ctx context.Context, method, path string,
	body any) (*CertificateView, error) {
	var out CertificateView
	if err := c.call(ctx, method, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// call sends body as JSON (when not nil) and decodes a successful answer into out
// (when not nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: read the answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return responseError(resp, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API: the answer is not the expected JSON: %w", err)
	}
	return nil
}

func (c *Client) request(ctx context.Context, method, path string,
	body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	base := strings.TrimSuffix(c.BaseURL, "/")
	if base == "" {
		base = DefaultAdminURL
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("admin API address %q: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: defaultClientTimeout}
}

// responseError reads the server's error envelope; an answer without one (from a
// proxy in between, say) becomes an APIError carrying the status line.
func responseError(resp *http.Response, data []byte) error {
	var body errorBody
	if err := json.Unmarshal(data, &body); err == nil && body.Error != nil {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &APIError{Status: resp.StatusCode, Code: fmt.Sprintf("http_%d", resp.StatusCode),
		Message: msg}
}
