package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// A proxy allocates a lot per request and keeps little: raising the garbage
// collector's target from 100% to 400% gave about a third more requests per second
// on one core. The heap would then grow to five times what the configuration keeps
// alive, which with thousands of certificates is hundreds of megabytes, so a soft
// memory limit (twice the live heap after a load, at least gcFloor) bounds it. An
// operator's GOGC or GOMEMLIMIT wins over both.
const (
	gcPercent = 400
	gcFloor   = 96 << 20
)

// tuneGC applies the collector settings and keeps the memory limit in step with
// every snapshot put in force.
func tuneGC(cur *certconfig.Current) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	settle := make(chan struct{}, 1)
	go func() {
		for range settle {
			settleMemory()
		}
	}()
	cur.Subscribe(func(_, _ *certconfig.Snapshot) {
		select {
		case settle <- struct{}{}:
		default: // one is already queued
		}
	})
	settleMemory()
}

// settleMemory returns what a load freed to the system and sets the memory limit
// from what the snapshot in force keeps alive.
func settleMemory() {
	debug.FreeOSMemory()
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	debug.SetMemoryLimit(int64(max(gcFloor, 2*m.HeapAlloc)))
}
