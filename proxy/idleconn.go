package proxy

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// idleConn closes a tunnel that carries nothing in either direction for the idle
// period. goproxy copies each direction in its own goroutine and closes both ends
// when one copy fails, so it is enough that a read from the upstream fails once
// neither side has moved a byte for that long. Traffic the other way (the client
// uploading while the server is silent) keeps the read waiting.
type idleConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last byte read or written
}

func newIdleConn(c net.Conn, idle time.Duration) net.Conn {
	ic := &idleConn{Conn: c, idle: idle}
	ic.touch()
	return ic
}

func (c *idleConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *idleConn) quietFor() time.Duration {
	return time.Since(time.Unix(0, c.last.Load()))
}

// Read waits for the upstream, giving up once both directions were quiet for idle.
func (c *idleConn) Read(p []byte) (int, error) {
	for {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle - c.quietFor()))
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.touch()
		}
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && c.quietFor() < c.idle {
			continue // the client side moved bytes meanwhile
		}
		return n, err
	}
}

// Write sends to the upstream; a write stalled for the idle period fails.
func (c *idleConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}
