package proxy

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// lastLine waits for the request to be reported and returns its log line.
func lastLine(t *testing.T, h *harness, msg string) map[string]any {
	t.Helper()
	h.lastOutcome(t)
	lines := h.logs.logLines(t, msg)
	if len(lines) == 0 {
		t.Fatalf("no %q log line in %s", msg, h.logs.String())
	}
	return lines[len(lines)-1]
}

func TestLogFields(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven}.start(t)
	upAddr := strings.TrimPrefix(up.URL, "https://")
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))

	req, _ := http.NewRequest(http.MethodPut, httpURL(up.URL)+"/in?q=1",
		strings.NewReader("0123456789"))
	req.Header.Set(DefaultCertHeader, "acme")
	resp, body := h.do(t, req)
	decodeEcho(t, resp, body)
	line := lastLine(t, h, "request")

	want := map[string]any{
		"level":              "INFO",
		"certificate":        "acme",
		"certificate_note":   "",
		"certificate_source": "header",
		"method":             "PUT",
		"host":               "127.0.0.1",
		"upstream":           upAddr,
		"tls":                true,
		"status":             float64(200),
		"error_code":         "",
		"bytes_in":           float64(10),
		"bytes_out":          float64(len(body)),
		"resumed":            false,
	}
	for field, v := range want {
		t.Run(field, func(t *testing.T) {
			if got, ok := line[field]; !ok || got != v {
				t.Errorf("%s = %#v, want %#v", field, got, v)
			}
		})
	}
	t.Run("duration_ms", func(t *testing.T) {
		if ms, ok := line["duration_ms"].(float64); !ok || ms <= 0 || ms > 20000 {
			t.Errorf("duration_ms = %#v", line["duration_ms"])
		}
	})
	for _, absent := range []string{"certificate_requested", "warning", "error", "proxy_user"} {
		if v, ok := line[absent]; ok {
			t.Errorf("%s logged for a plain success: %v", absent, v)
		}
	}
}

// TestLogCertificateNote covers every reason for presenting no certificate.
func TestLogCertificateNote(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven}.start(t)
	plain := plainUpstream(t, echoHandler)
	cases := []struct {
		name, url   string
		header      []string
		certificate string
		note        string
		requested   any // nil when the field must be absent
	}{
		{"presented", httpURL(up.URL), []string{DefaultCertHeader, "acme"}, "acme", "", nil},
		{"disabled", httpURL(up.URL), []string{DefaultCertHeader, "off"}, "", "disabled", "off"},
		{"unknown", httpURL(up.URL), []string{DefaultCertHeader, "ghost"}, "", "unknown", "ghost"},
		{"no route", plain.URL, nil, "", "no route", nil},
		{"refused before routing", "ftp://example.test/", nil, "", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
				[]*certconfig.Certificate{clientCert("acme"), clientCert("off", disabled())}))
			sendRaw(t, h, tc.url, tc.header...)
			line := lastLine(t, h, "request")
			if line["certificate"] != tc.certificate || line["certificate_note"] != tc.note ||
				line["certificate_requested"] != tc.requested {
				t.Errorf("certificate %q, note %q, requested %v", line["certificate"],
					line["certificate_note"], line["certificate_requested"])
			}
		})
	}
}

// sendRaw writes a GET for target to the proxy by hand, so that any scheme can be
// asked for, and reads the answer.
func sendRaw(t *testing.T, h *harness, target string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := req.WriteProxy(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

func TestLogTunnelNote(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.RequestClientCert}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	c := tunnelClient(h, http.Header{DefaultCertHeader: {"acme"}})
	defer c.CloseIdleConnections()
	resp, err := c.Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	line := lastLine(t, h, "tunnel")
	if line["certificate"] != "" || line["certificate_note"] != "tunnel" ||
		line["certificate_requested"] != "acme" || line["method"] != "CONNECT" {
		t.Errorf("tunnel log line %v", line)
	}
}

func TestLogFailure(t *testing.T) {
	t.Parallel()
	target := closedPort(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	h.get(t, "http://"+target+"/", DefaultCertHeader, "acme")
	line := lastLine(t, h, "request")
	if line["level"] != "WARN" || line["error_code"] != CodeUpstreamConnectionRefused ||
		line["status"] != float64(502) || line["upstream"] != target {
		t.Errorf("log line %v", line)
	}
	if msg, _ := line["error"].(string); !strings.Contains(msg, "refused") {
		t.Errorf("error %q", msg)
	}
}

func TestLogResumed(t *testing.T) {
	t.Parallel()
	up := upstream{handler: closeAfterEach}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	for range 2 {
		h.get(t, httpURL(up.URL), DefaultCertHeader, "acme")
	}
	h.outcomesAtLeast(t, 2)
	lines := h.logs.logLines(t, "request")
	if len(lines) != 2 || lines[0]["resumed"] != false || lines[1]["resumed"] != true {
		t.Errorf("resumed fields %v then %v", lines[0]["resumed"], lines[1]["resumed"])
	}
}

// TestLogKeepsSecretsOut sends credentials in every header that carries them;
// none may reach the log, nor the routing header beyond the name.
func TestLogKeepsSecretsOut(t *testing.T) {
	t.Parallel()
	up := upstream{clientAuth: tls.VerifyClientCertIfGiven}.start(t)
	h := newHarness(t, newSnapshot(t, certconfig.ProxyConfig{},
		[]*certconfig.Certificate{clientCert("acme")}))
	secrets := []string{"Bearer tok-123", "Basic cHJveHk6cGFzcw==", "session=abc987"}
	h.get(t, httpURL(up.URL)+"/?k=v", DefaultCertHeader, "acme",
		"Authorization", secrets[0], "Proxy-Authorization", secrets[1], "Cookie", secrets[2])
	h.get(t, "http://"+closedPort(t)+"/", DefaultCertHeader, "acme",
		"Authorization", secrets[0], "Proxy-Authorization", secrets[1])
	h.outcomesAtLeast(t, 2)
	logs := h.logs.String()
	for _, s := range append(secrets, "tok-123", "cHJveHk6cGFzcw") {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}
