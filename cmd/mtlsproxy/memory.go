package main

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// A proxy allocates a lot per request and keeps little: raising the garbage
// collector's target from 100% to 400% gave about a third more requests per second
// on one core. The heap may then grow to five times what the configuration keeps
// alive, which with thousands of certificates is a hundred megabytes or more, so a
// soft memory limit bounds it: what the process holds once a snapshot is settled,
// plus gcHeadroom for the garbage of the requests. With a small configuration the
// limit is never reached and the 400% target alone decides. An operator's GOGC or
// GOMEMLIMIT wins over both.
const (
	gcPercent  = 400
	gcHeadroom = 24 << 20
	gcFloor    = 64 << 20 // never less: small configurations keep the 400% target
)

// tuneGC applies the collector settings and keeps the memory limit in step with
// every snapshot put in force. Call it once the daemon has started, so that what
// startup allocated (the watcher's file index, the listeners) is settled too.
func tuneGC(cur *certconfig.Current) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// A new snapshot is followed by work that allocates too (the watcher indexes
	// the files again, the old transports close), so settling waits for it.
	settle := time.AfterFunc(time.Hour, settleMemory)
	settle.Stop()
	cur.Subscribe(func(_, _ *certconfig.Snapshot) { settle.Reset(settleDelay) })
	settleMemory()
}

// settleDelay is how long after a snapshot is put in force its memory is settled.
const settleDelay = time.Second

// settleMemory returns what a load freed to the system and sets the memory limit
// from what the snapshot in force keeps alive.
func settleMemory() {
	memoryMu.Lock()
	defer memoryMu.Unlock()
	debug.FreeOSMemory()
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(max(gcFloor, heldMemory()+gcHeadroom)))
}

// memoryMu keeps settleMemory from running during a load: the limit it would set
// is meant for one snapshot, and the load's deferred restore would undo it anyway.
var memoryMu sync.Mutex

// heldMemory is what the Go runtime holds from the system and has not returned:
// the quantity a memory limit applies to.
func heldMemory() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	return samples[0].Value.Uint64() - samples[1].Value.Uint64()
}

// loadGCPercent is the collector's target while a config file loads. Parsing
// thousands of certificates makes much short-lived garbage between the values a
// snapshot keeps; at the serving target (gcPercent) the kept values ended up
// spread over many half-empty pages, which the process could not give back
// (10,000 certificates, after reloads that parse them all: about 71 MB resident
// at 100%, 53 to 58 MB at 25%).
const loadGCPercent = 25

// compactLoad returns the Reloader's Build function: the default load, run with
// the collector at loadGCPercent unless the operator set GOGC. withStore lets
// routes name certificates that the admin state defines.
func compactLoad(withStore bool) func(string, *certconfig.Snapshot) (*certconfig.Snapshot, error) {
	return func(path string, prev *certconfig.Snapshot) (*certconfig.Snapshot, error) {
		memoryMu.Lock()
		defer memoryMu.Unlock()
		if os.Getenv("GOGC") == "" {
			defer debug.SetGCPercent(debug.SetGCPercent(loadGCPercent))
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			// The old snapshot and the new one are both alive until the swap; held
			// to the limit set for one, the collector would run without pause.
			// loadGCPercent bounds the heap meanwhile.
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
		}
		return certconfig.LoadFileWith(path, certconfig.LoadOptions{
			AllowUnknownRouteCertificates: withStore,
			Previous:                      prev,
		})
	}
}
