// Package testlog gives tests a place to collect what a logger writes while the
// code under test keeps running.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that a logger and a test may use at the same time.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
