package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// tunnelClient sends https:// requests through the proxy, which makes it CONNECT.
func tunnelClient(h *harness, connectHeader http.Header) *http.Client {
	u, _ := url.Parse(h.srv.URL)
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			Proxy:              http.ProxyURL(u),
			ProxyConnectHeader: connectHeader,
			TLSClientConfig:    &tls.Config{RootCAs: fixture().serverRoot.Pool()},
		},
	}
}

func TestConnectTunnel(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.RequestClientCert}.start(t)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "https://"))
	cases := []struct {
		name    string
		header  http.Header
		route   []certconfig.RouteConfig
		warning string // the certificate named in the warning; "" for none
	}{
		{name: "plain tunnel"},
		{name: "routing header", header: http.Header{DefaultCertHeader: {"acme"}}, warning: "acme"},
		{name: "route with a certificate",
			route:   []certconfig.RouteConfig{{Host: host, Certificate: "acme"}},
			warning: "acme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("acme")}, tc.route...))
			c := tunnelClient(h, tc.header)
			defer c.CloseIdleConnections()
			resp, err := c.Get(up.URL + "/through")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if e := decodeEcho(t, resp, body); e.Path != "/through" || e.ClientCN != "" {
				t.Errorf("upstream saw %+v", e)
			}
			h.lastOutcome(t)
			lines := h.logs.logLines(t, "tunnel")
			if len(lines) != 1 || lines[0]["upstream"] != net.JoinHostPort(host, port) ||
				lines[0]["status"] != float64(200) {
				t.Fatalf("tunnel log %v", lines)
			}
			warning, _ := lines[0]["warning"].(string)
			switch {
			case tc.warning == "" && warning != "":
				t.Errorf("unexpected warning %q", warning)
			case tc.warning != "" && (!strings.Contains(warning, fmt.Sprintf("%q", tc.warning)) ||
				!strings.Contains(warning, "plain http://") || lines[0]["level"] != "WARN"):
				t.Errorf("warning %q at %v", warning, lines[0]["level"])
			}
		})
	}
}

// rawConnect sends a CONNECT by hand and returns the proxy's answer.
func rawConnect(t *testing.T, h *harness, target string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestConnectRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		pc   certconfig.ProxyConfig
		code string
	}{
		{"upstream refuses", certconfig.ProxyConfig{}, CodeUpstreamConnectionRefused},
		{"connect denied", certconfig.ProxyConfig{Connect: "deny"}, CodeConnectDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, tc.pc, nil))
			target := closedPort(t)
			resp, body := rawConnect(t, h, target)
			var pe proxyError
			if err := json.Unmarshal(body, &pe); err != nil {
				t.Fatalf("status %d body %q: %v", resp.StatusCode, body, err)
			}
			if resp.StatusCode != Status(tc.code) || pe.Error.Code != tc.code ||
				resp.Header.Get(ErrorHeader) != tc.code || pe.Error.Upstream != target {
				t.Errorf("status %d, header %q, body %s", resp.StatusCode,
					resp.Header.Get(ErrorHeader), body)
			}
			if o := h.lastOutcome(t); !o.Tunnel || o.Code != tc.code || o.Status != Status(tc.code) {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}
