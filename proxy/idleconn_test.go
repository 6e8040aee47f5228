package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// openTunnel sends CONNECT target to the proxy and returns the raw tunnel.
func openTunnel(t *testing.T, h *harness, target string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	return conn
}

// echoListener echoes what it reads unless quiet, in which case it reads and drops.
func echoListener(t *testing.T, quiet bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if quiet {
					_, _ = io.Copy(io.Discard, c)
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTunnelIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	pc := certconfig.ProxyConfig{TunnelIdleTimeout: certconfig.Duration{Duration: idle}}
	newH := func() *harness { return newHarness(t, newSnapshot(t, pc, nil)) }

	t.Run("silent tunnel is closed", func(t *testing.T) {
		t.Parallel()
		conn := openTunnel(t, newH(), echoListener(t, false))
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("read data from a silent tunnel")
		}
		if waited := time.Since(start); waited < idle/2 || waited > 5*time.Second {
			t.Fatalf("tunnel closed after %v, want about %v", waited, idle)
		}
	})
	t.Run("upload to a silent server keeps it open", func(t *testing.T) {
		t.Parallel()
		conn := openTunnel(t, newH(), echoListener(t, true))
		for range 12 { // 12 x 75ms: three idle periods
			if _, err := conn.Write([]byte("x")); err != nil {
				t.Fatalf("tunnel closed while the client was sending: %v", err)
			}
			time.Sleep(75 * time.Millisecond)
		}
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := conn.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("tunnel closed while the client was sending: %v", err)
		}
	})
	t.Run("echo traffic keeps it open", func(t *testing.T) {
		t.Parallel()
		conn := openTunnel(t, newH(), echoListener(t, false))
		buf := make([]byte, 1)
		for range 12 {
			if _, err := conn.Write([]byte("y")); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(conn, buf); err != nil {
				t.Fatalf("echo through the tunnel: %v", err)
			}
			time.Sleep(75 * time.Millisecond)
		}
	})
}
