package certconfig

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsproxy/mtlsproxy/internal/testpki"
)

const overlayConfig = `
[[certificate]]
name = "file"
cert_file = "file.pem"
key_file = "file.key"

[[route]]
host = "file.example"
certificate = "file"

[[route]]
host = "api.example"
certificate = "api"
`

// overlayEnv is a config file whose second route names a certificate that only the
// admin state defines, with a Reloader backed by a Store.
func overlayEnv(t *testing.T) (*Reloader, string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "file.pem", pki().ec.ChainPEM(), 0o600)
	writeFile(t, dir, "file.key", pki().ec.KeyPEM(), 0o600)
	cfg := writeFile(t, dir, "mtlsproxy.toml", []byte(overlayConfig), 0o600)
	return newStoreReloader(t, cfg, filepath.Join(dir, "state")), dir
}

func newStoreReloader(t *testing.T, cfg, stateDir string) *Reloader {
	t.Helper()
	store, err := OpenStore(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return &Reloader{Path: cfg, Current: &Current{}, Store: store,
		Logger: slog.New(slog.DiscardHandler)}
}

func addAPI(name string, enabled bool) func(*State, *Snapshot) error {
	return func(st *State, _ *Snapshot) error {
		if st.Certificates == nil {
			st.Certificates = map[string]StoredCertificate{}
		}
		st.Certificates[name] = StoredCertificate{
			CertPEM: string(pki().rsa.ChainPEM()), KeyPEM: string(pki().rsa.KeyPEM()),
			Enabled: enabled, Created: time.Now(),
		}
		delete(st.Deleted, name)
		return nil
	}
}

func TestReloaderRouteToUnknownCertificateNeedsState(t *testing.T) {
	t.Parallel()
	r, _ := overlayEnv(t)
	if _, err := r.Reload("start"); !errors.Is(err, ErrUnknownCertificate) {
		t.Fatalf("route naming an undefined certificate: got %v", err)
	}
	if r.Current.Load() != nil {
		t.Fatal("a failed first load put a snapshot in force")
	}
	if st := r.Current.Status(); st.Success || st.Failures != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestReloaderChangeIsDurableAndSurvivesReload(t *testing.T) {
	t.Parallel()
	r, dir := overlayEnv(t)
	if _, err := r.Change(addAPI("api", true)); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("change before the first load: %v", err)
	}
	// A tombstone lets the route name "api" before it exists.
	seedState(t, r, func(st *State, _ *Snapshot) error {
		st.Deleted = map[string]time.Time{"api": time.Now()}
		return nil
	})
	snap, err := r.Change(addAPI("api", true))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := snap.Certificate("api")
	if !ok || c.Source != SourceAPI || !c.Enabled {
		t.Fatalf("api certificate after add: %+v", c)
	}
	if r.Current.Load() != snap {
		t.Fatal("Change returned before its snapshot was in force")
	}
	info, err := os.Stat(filepath.Join(dir, "state", StateFileName))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, mode %v; want 0600", err, info.Mode())
	}

	// A reload of the file keeps the change, and a restart reads it back.
	if _, err := r.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Current.Load().Certificate("api"); !ok {
		t.Fatal("reload of the config file undid the admin change")
	}
	again := newStoreReloader(t, r.Path, filepath.Join(dir, "state"))
	if _, err := again.Reload("start"); err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Current.Load().Certificate("api"); !ok {
		t.Fatal("admin change lost across a restart")
	}
}

func TestReloaderDeleteLeavesDanglingRoute(t *testing.T) {
	t.Parallel()
	r, _ := overlayEnv(t)
	seedState(t, r, addAPI("api", true))
	snap, err := r.Change(func(st *State, _ *Snapshot) error {
		delete(st.Certificates, "api")
		st.Deleted = map[string]time.Time{"api": time.Now()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Certificate("api"); ok {
		t.Fatal("deleted certificate still in the snapshot")
	}
	if rt := snap.Route("api.example", 443); rt == nil || rt.Certificate != "api" {
		t.Fatalf("route to the deleted certificate: %+v", rt)
	}
}

func TestReloaderEnableOverrideOfFileCertificate(t *testing.T) {
	t.Parallel()
	r, _ := overlayEnv(t)
	seedState(t, r, addAPI("api", true))
	snap, err := r.Change(func(st *State, base *Snapshot) error {
		st.Enabled = map[string]bool{"file": false}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := snap.Certificate("file"); c.Enabled {
		t.Fatal("disable through the state did not apply")
	}
	if _, err := r.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Current.Load().Certificate("file"); c.Enabled {
		t.Fatal("reload of the file re-enabled a certificate disabled through the API")
	}
}

func TestReloaderFailedChangeChangesNothing(t *testing.T) {
	t.Parallel()
	r, dir := overlayEnv(t)
	seedState(t, r, addAPI("api", true))
	before := r.Current.Load()
	stateBefore, err := os.ReadFile(filepath.Join(dir, "state", StateFileName))
	if err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	cases := []struct {
		name string
		edit func(*State, *Snapshot) error
		want error
	}{
		{"edit refuses", func(*State, *Snapshot) error { return refuse }, refuse},
		{"material does not build", func(st *State, _ *Snapshot) error {
			sc := st.Certificates["api"]
			sc.KeyPEM = string(pki().other.KeyPEM())
			st.Certificates["api"] = sc
			return nil
		}, ErrKeyMismatch},
		{"route target removed without a tombstone", func(st *State, _ *Snapshot) error {
			delete(st.Certificates, "api")
			delete(st.Deleted, "api")
			return nil
		}, ErrUnknownCertificate},
	}
	for _, tc := range cases {
		if _, err := r.Change(tc.edit); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if r.Current.Load() != before {
			t.Errorf("%s: snapshot changed", tc.name)
		}
		after, _ := os.ReadFile(filepath.Join(dir, "state", StateFileName))
		if string(after) != string(stateBefore) {
			t.Errorf("%s: state file changed", tc.name)
		}
	}
}

func TestReloaderConcurrentChangesAllLand(t *testing.T) {
	t.Parallel()
	r, _ := overlayEnv(t)
	seedState(t, r, addAPI("api", true))
	names := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			if _, err := r.Change(addAPI(n, true)); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { _, _ = r.Reload("SIGHUP") })
	}
	wg.Wait()
	for _, n := range names {
		if _, ok := r.Current.Load().Certificate(n); !ok {
			t.Errorf("concurrent add of %s was lost", n)
		}
	}
}

// seedState writes a state with edit applied and loads the config over it.
func seedState(t *testing.T, r *Reloader, edit func(*State, *Snapshot) error) {
	t.Helper()
	st := State{Version: 1}
	if err := edit(&st, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Store.Save(st); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reload("start"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenStoreRejectsCorruptState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, StateFileName, []byte("{not json"), 0o600)
	if _, err := OpenStore(dir); err == nil {
		t.Fatal("corrupt state accepted")
	}
	empty := filepath.Join(t.TempDir(), "new", "state")
	s, err := OpenStore(empty)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(empty); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("state folder: %v %v", err, info.Mode())
	}
	if _, err := os.Stat(filepath.Join(empty, StateFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("opening a store wrote a state file")
	}
	if len(s.State().Certificates) != 0 {
		t.Fatal("new store is not empty")
	}
}

// writeClashingConfig makes the config file define a certificate named "api", like
// the one addAPI("api", ...) adds through the admin state.
func writeClashingConfig(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, dir, "mtlsproxy.toml", []byte(overlayConfig+`
[[certificate]]
name = "api"
cert_file = "file.pem"
key_file = "file.key"
`), 0o600)
}

func TestReloaderRejectsFileCertificateNamedLikeAPIOne(t *testing.T) {
	t.Parallel()
	r, dir := overlayEnv(t)
	seedState(t, r, addAPI("api", true))
	before := r.Current.Load()
	writeClashingConfig(t, dir)
	_, err := r.Reload("SIGHUP")
	if !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), `certificate "api"`) {
		t.Fatalf("reload with a name clash: %v", err)
	}
	if r.Current.Load() != before {
		t.Fatal("a rejected reload replaced the snapshot")
	}
	if c, _ := r.Current.Load().Certificate("api"); c.Source != SourceAPI {
		t.Fatal("the API certificate was replaced by the file's")
	}
}

func TestReloaderChangeResolvingANameClashLoadsTheFile(t *testing.T) {
	t.Parallel()
	r, dir := overlayEnv(t)
	seedState(t, r, addAPI("api", true))
	writeClashingConfig(t, dir)
	if _, err := r.Reload("file change"); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("reload with a name clash: %v", err)
	}
	// Deleting the API certificate, as the error message advises, must let the
	// file's certificate of that name come into force without another file change.
	snap, err := r.Change(func(st *State, _ *Snapshot) error {
		delete(st.Certificates, "api")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := snap.Certificate("api")
	if !ok || c.Source != SourceConfig {
		t.Fatalf("after the delete, api is %+v (found %v), want the file's", c, ok)
	}
	if st := r.Current.Status(); !st.Success || st.Err != "" {
		t.Errorf("status still reports the rejected load: %+v", st)
	}
}

func TestReloaderBringsAPICertificateWarningsUpToDate(t *testing.T) {
	t.Parallel()
	r, _ := overlayEnv(t)
	soon := pki().inter.Client(testpki.Options{CommonName: "soon",
		NotAfter: time.Now().Add(time.Second)})
	seedState(t, r, func(st *State, _ *Snapshot) error {
		st.Certificates = map[string]StoredCertificate{"api": {
			CertPEM: string(soon.CertPEM()), KeyPEM: string(soon.KeyPEM()),
			Enabled: true, Created: time.Now()}}
		return nil
	})
	time.Sleep(time.Until(soon.Cert.NotAfter.Add(100 * time.Millisecond)))
	snap, err := r.Reload("SIGHUP")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := snap.Certificate("api")
	if !slices.ContainsFunc(c.Warnings, func(w string) bool {
		return strings.Contains(w, "certificate expired on")
	}) {
		t.Errorf("warnings of the API certificate after it expired: %q", c.Warnings)
	}
}
