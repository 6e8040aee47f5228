package certconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StateFileName is the file in the state folder that holds admin changes.
const StateFileName = "state.json"

// State is everything the admin API changed: certificates it added, the enabled
// flag of certificates the config file defines, and the names it deleted (routes
// may still name those; they then send without a client certificate).
type State struct {
	Version      int                          `json:"version"`
	Certificates map[string]StoredCertificate `json:"certificates,omitempty"`
	Enabled      map[string]bool              `json:"enabled,omitempty"`
	Deleted      map[string]time.Time         `json:"deleted,omitempty"`
}

// StoredCertificate is a certificate added through the admin API, as given. The
// state file holding it is written with mode 0600 since it holds private keys.
type StoredCertificate struct {
	CertPEM            string    `json:"certificate_pem"`
	KeyPEM             string    `json:"private_key_pem"`
	Passphrase         string    `json:"passphrase,omitempty"`
	CAPEM              string    `json:"ca_pem,omitempty"`
	ServerName         string    `json:"server_name,omitempty"`
	ServerCAPEM        string    `json:"server_ca_pem,omitempty"`
	InsecureSkipVerify bool      `json:"insecure_skip_verify,omitempty"`
	Enabled            bool      `json:"enabled"`
	Created            time.Time `json:"created"`
	Updated            time.Time `json:"updated"`
}

// CertificateConfig turns the stored certificate into the form the loader builds.
func (sc StoredCertificate) CertificateConfig(name string) CertificateConfig {
	enabled := sc.Enabled
	return CertificateConfig{
		Name:               name,
		CertPEM:            sc.CertPEM,
		KeyPEM:             sc.KeyPEM,
		Passphrase:         sc.Passphrase,
		CAPEM:              sc.CAPEM,
		ServerName:         sc.ServerName,
		ServerCAPEM:        sc.ServerCAPEM,
		InsecureSkipVerify: sc.InsecureSkipVerify,
		Enabled:            &enabled,
	}
}

// Clone returns a deep copy that may be changed without touching s.
func (s State) Clone() State {
	return State{
		Version:      s.Version,
		Certificates: maps.Clone(s.Certificates),
		Enabled:      maps.Clone(s.Enabled),
		Deleted:      maps.Clone(s.Deleted),
	}
}

// Store keeps the admin State durably in a folder. Every Save writes a temporary
// file, syncs it, renames it over the state file and syncs the folder, so a crash at
// any moment leaves either the old or the new state.
type Store struct {
	dir string

	mu    sync.Mutex
	state State
}

// OpenStore reads the state in dir, creating dir (mode 0700) when it is missing.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("admin.state_dir: %w; create the folder or fix the path", err)
	}
	st, err := readState(filepath.Join(dir, StateFileName))
	if err != nil {
		return nil, err
	}
	return &Store{dir: dir, state: st}, nil
}

func readState(path string) (State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Version: 1}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("admin state %s: %w", path, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("admin state %s is not valid JSON (%v); "+
			"restore it from a backup or remove it to start without admin changes", path, err)
	}
	return st, nil
}

// Dir is the state folder.
func (s *Store) Dir() string { return s.dir }

// State returns a copy of the state.
func (s *Store) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Clone()
}

// Save writes st durably and makes it the store's state.
func (s *Store) Save(st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode admin state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, StateFileName), data, 0o600); err != nil {
		return err
	}
	s.state = st.Clone()
	return nil
}

// writeFileAtomic replaces path with data so that readers, and a crash, see either
// the old or the new content, never a mix.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
