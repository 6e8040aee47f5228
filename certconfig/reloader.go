package certconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Reloader is the one place where the snapshot in force changes. It loads the config
// file (on start, on a file change, on SIGHUP) and applies admin changes, one at a
// time, and swaps in a new snapshot only when it is valid: a failed reload or change
// leaves the snapshot in force untouched.
//
// With a Store, the snapshot is the config file's certificates and routes with the
// admin state laid over them, so that a reload of the file never undoes an admin
// change and an admin change never needs the file to be read again.
type Reloader struct {
	// Path is the config file.
	Path    string
	Current *Current
	Logger  *slog.Logger
	// Store, when set, holds admin changes to lay over the config file.
	Store *Store
	// Build makes the config file's snapshot from the file at path; prev is the one
	// it made last time (nil at first), for LoadOptions.Previous. Nil means
	// LoadFileWith with Previous set and, with a Store, routes allowed to name
	// certificates the admin state defines.
	Build func(path string, prev *Snapshot) (*Snapshot, error)
	// Check, when set, is a last test of a new snapshot by the packages that use it
	// (the egress policy compiles, for one); an error rejects the snapshot.
	Check func(*Snapshot) error

	mu      sync.Mutex
	base    *Snapshot // the config file's snapshot, before the admin state
	built   map[string]builtCert
	lastErr string
	counts  [2]uint64 // failed, succeeded
}

// builtCert caches a certificate built from the admin state, so that a reload of
// the config file does not parse and check thousands of keys again.
type builtCert struct {
	stored StoredCertificate
	cert   *Certificate
}

// Reload loads the configuration again. reason ("file change", "SIGHUP") is logged.
func (r *Reloader) Reload(reason string) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	start := time.Now()
	base, err := r.build()
	var snap *Snapshot
	if err == nil {
		snap, err = r.overlay(base, r.state())
	}
	if err == nil && r.Check != nil {
		err = r.Check(snap)
	}
	if err != nil {
		r.record(false, err)
		r.logFailure(reason, err)
		return nil, err
	}
	r.base = base
	old := r.Current.Load()
	r.Current.Swap(snap)
	r.record(true, nil)
	r.logSuccess(reason, old, snap, time.Since(start))
	return snap, nil
}

// ErrNoStore is returned by Change when the Reloader has no Store.
var ErrNoStore = errors.New("no admin state folder is configured")

// ErrNotLoaded is returned by Change before the config file was loaded once.
var ErrNotLoaded = errors.New("the configuration is not loaded yet")

// Change applies an admin change: edit receives a copy of the admin state to change.
// The result is built and checked, written durably, and put in force before Change
// returns. If edit, the build or the write fails, nothing changes.
func (r *Reloader) Change(edit func(st *State, base *Snapshot) error) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Store == nil {
		return nil, ErrNoStore
	}
	if r.base == nil {
		return nil, ErrNotLoaded
	}

	st := r.Store.State()
	if err := edit(&st, r.base); err != nil {
		return nil, err
	}
	start := time.Now()
	base, snap, retried := r.retryFile(st)
	if snap == nil {
		var err error
		if snap, err = r.overlay(base, st); err != nil {
			return nil, err
		}
	}
	if err := r.Store.Save(st); err != nil {
		return nil, err
	}
	old := r.Current.Load()
	r.Current.Swap(snap)
	if retried {
		r.base = base
		r.record(true, nil)
		r.logSuccess("admin change", old, snap, time.Since(start))
		return snap, nil
	}
	added, changed, removed := DiffCertificates(old, snap)
	r.logger().Debug("admin change in force",
		"added", added, "changed", changed, "removed", removed)
	return snap, nil
}

// retryFile is for an admin change made while the config file's last version was
// rejected: the rejection may have come from the admin state itself (a name the
// file and the API both define, which the change may now give up), so the file is
// loaded again and laid under the changed state. If that works, it returns the
// new file snapshot, the combined one and true; otherwise the file snapshot in
// force, nil and false, and the change applies to it alone.
func (r *Reloader) retryFile(st State) (*Snapshot, *Snapshot, bool) {
	if r.lastErr == "" {
		return r.base, nil, false
	}
	base, err := r.build()
	if err != nil {
		return r.base, nil, false
	}
	snap, err := r.overlay(base, st)
	if err == nil && r.Check != nil {
		err = r.Check(snap)
	}
	if err != nil {
		return r.base, nil, false
	}
	return base, snap, true
}

func (r *Reloader) build() (*Snapshot, error) {
	if r.Build != nil {
		return r.Build(r.Path, r.base)
	}
	return LoadFileWith(r.Path, LoadOptions{
		AllowUnknownRouteCertificates: r.Store != nil,
		Previous:                      r.base,
	})
}

func (r *Reloader) state() State {
	if r.Store == nil {
		return State{}
	}
	return r.Store.State()
}

// overlay lays the admin state over the config file's snapshot: certificates added
// through the API join those of the file, and enabled flags set through the API
// replace the file's. Routes must name a certificate that exists, or one that was
// deleted through the API.
func (r *Reloader) overlay(base *Snapshot, st State) (*Snapshot, error) {
	if r.Store == nil {
		return base, nil
	}
	certs := make(map[string]*Certificate, len(base.Certificates)+len(st.Certificates))
	names := make([]string, 0, len(base.Names)+len(st.Certificates))
	for _, name := range base.Names {
		certs[name] = withEnabled(base.Certificates[name], st.Enabled)
		names = append(names, name)
	}
	apiNames, err := r.buildAPICertificates(st, base)
	if err != nil {
		return nil, err
	}
	var clashes []error
	for _, b := range apiNames {
		if _, clash := certs[b.cert.Name]; clash {
			clashes = append(clashes, &FieldError{Certificate: b.cert.Name, Err: fmt.Errorf(
				"%w: defined in the config file and also added through the admin API; "+
					"rename the one in the file, or delete the API one with "+
					"\"mtlsproxy certs delete %s\"", ErrDuplicateName, b.cert.Name)})
			continue
		}
		certs[b.cert.Name] = b.cert
		names = append(names, b.cert.Name)
	}
	if len(clashes) > 0 {
		return nil, errors.Join(clashes...)
	}
	if err := checkRouteTargets(base.Routes, certs, st.Deleted); err != nil {
		return nil, err
	}
	snap := *base
	snap.Certificates, snap.Names = certs, names
	return &snap, nil
}

// withEnabled returns c with the enabled flag the admin state sets for it, if any.
func withEnabled(c *Certificate, enabled map[string]bool) *Certificate {
	on, ok := enabled[c.Name]
	if !ok || on == c.Enabled {
		return c
	}
	cp := *c
	cp.Enabled = on
	return &cp
}

// buildAPICertificates builds the certificates of the admin state, in the order they
// were added, reusing those built before from the same stored input.
func (r *Reloader) buildAPICertificates(st State, base *Snapshot) ([]builtCert, error) {
	names := make([]string, 0, len(st.Certificates))
	for name := range st.Certificates {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := st.Certificates[names[i]], st.Certificates[names[j]]
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return names[i] < names[j]
	})
	built := make(map[string]builtCert, len(names))
	out := make([]builtCert, 0, len(names))
	var errs []error
	now := time.Now()
	for _, name := range names {
		sc := st.Certificates[name]
		b, ok := r.built[name]
		if !ok || b.stored != sc {
			c, err := BuildCertificate(sc.CertificateConfig(name), base.Config.Dir, SourceAPI)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			b = builtCert{stored: sc, cert: c}
		} else {
			b.cert = b.cert.at(now) // its date warnings as they stand now
		}
		built[name] = b
		out = append(out, b)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.built = built
	return out, nil
}

func checkRouteTargets(routes []*Route, certs map[string]*Certificate,
	deleted map[string]time.Time) error {
	var errs []error
	for i, rt := range routes {
		if rt.Certificate == "" {
			continue
		}
		if _, ok := certs[rt.Certificate]; ok {
			continue
		}
		if _, ok := deleted[rt.Certificate]; ok {
			continue
		}
		errs = append(errs, fmt.Errorf("route %d (host %q): certificate %q: %w; add a "+
			"[[certificate]] with that name or fix the name", i+1, rt.Host, rt.Certificate,
			ErrUnknownCertificate))
	}
	return errors.Join(errs...)
}

func (r *Reloader) record(ok bool, err error) {
	now := time.Now()
	st := r.Current.Status()
	st.At = now
	if ok {
		r.counts[1]++
		r.lastErr = ""
		st.Success, st.Err, st.LastSuccess = true, "", now
	} else {
		r.counts[0]++
		st.Success, st.Err = false, err.Error()
	}
	st.Failures, st.Successes = r.counts[0], r.counts[1]
	r.Current.SetStatus(st)
}

// logFailure logs a failed reload once: the same error seen again (the watcher
// retries on every change) is logged at debug level only. Before the first
// success there is no configuration in force to keep, and the message says so.
func (r *Reloader) logFailure(reason string, err error) {
	lg := r.logger()
	msg := err.Error()
	rejected := "configuration rejected; keeping the last good one"
	still := "configuration still invalid; keeping the last good one"
	if r.Current.Load() == nil {
		rejected, still = "configuration rejected", "configuration still invalid"
	}
	if msg == r.lastErr {
		lg.Debug(still, "reason", reason, "error", msg)
		return
	}
	r.lastErr = msg
	lg.Error(rejected, "reason", reason, "config", r.Path, "error", msg)
}

func (r *Reloader) logSuccess(reason string, old, cur *Snapshot, took time.Duration) {
	lg := r.logger()
	added, changed, removed := DiffCertificates(old, cur)
	lg.Info("configuration loaded", "reason", reason, "config", r.Path,
		"certificates", len(cur.Names), "routes", len(cur.Routes),
		"added", added, "changed", changed, "removed", removed,
		"duration_ms", float64(took.Microseconds())/1000)
	for _, name := range cur.Names {
		for _, w := range cur.Certificates[name].Warnings {
			lg.Warn("certificate warning", "certificate", name, "warning", w)
		}
	}
}

func (r *Reloader) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// DiffCertificates names the certificates that cur adds to old, those whose
// material or settings changed (a different ID or enabled state) and those it drops.
// A nil old counts as empty.
func DiffCertificates(old, cur *Snapshot) (added, changed, removed []string) {
	var before map[string]*Certificate
	if old != nil {
		before = old.Certificates
	}
	for _, name := range cur.Names {
		o, ok := before[name]
		n := cur.Certificates[name]
		switch {
		case !ok:
			added = append(added, name)
		case o.ID != n.ID || o.Enabled != n.Enabled:
			changed = append(changed, name)
		}
	}
	if old != nil {
		for _, name := range old.Names {
			if _, ok := cur.Certificates[name]; !ok {
				removed = append(removed, name)
			}
		}
	}
	return added, changed, removed
}
