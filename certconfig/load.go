package certconfig

import (
	"runtime"

	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/BurntSushi/toml"
)

// LoadFile reads the TOML file at path, applies defaults, validates every key, reads
// every certificate, key, passphrase and CA it names, and returns a snapshot. Errors
// name the certificate, the field and the fix; all problems are reported at once,
// one per line.
func LoadFile(path string) (*Snapshot, error) {
	return LoadFileWith(path, LoadOptions{})
}

// Load is LoadFile for a configuration already in memory; path locates the files it
// names (relative paths start at its folder) and may be empty for the working
// directory.
func Load(data []byte, path string) (*Snapshot, error) {
	return load(data, path, LoadOptions{})
}

func load(data []byte, path string, o LoadOptions) (*Snapshot, error) {
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	cfg.ApplyDefaults()
	defined := cfg.certificateNames()
	if o.AllowUnknownRouteCertificates {
		defined = nil
	}
	routes, err := cfg.validate(defined)
	if err != nil {
		return nil, err
	}
	certs, err := buildAll(cfg, time.Now(), o.Previous)
	if err != nil {
		return nil, err
	}
	// The routes were compiled and checked against these names by validate.
	snap, err := newSnapshot(cfg, certs)
	if err != nil {
		return nil, err
	}
	snap.setRoutes(routes)
	// What the [[certificate]] tables said now lives in snap.Certificates; their
	// decoded text was a tenth of the memory of a large configuration.
	cfg.Certificates = nil
	return snap, nil
}

// Parse decodes a TOML configuration. A key the schema does not know is an error
// that names it and, when one is close, the key that was probably meant. Parse sets
// Path to path and Dir to its folder, made absolute; it neither applies defaults nor
// validates.
func Parse(data []byte, path string) (*Config, error) {
	src := path
	if src == "" {
		src = "config"
	}
	var cfg Config
	md, err := toml.Decode(string(bytes.TrimPrefix(data, utf8BOM)), &cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if errs := unknownKeys(src, md.Undecoded()); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.Path = path
	cfg.Dir = resolvePath("", filepath.Dir(path))
	return &cfg, nil
}

// buildAll builds every certificate of cfg and reports all failures together.
func buildAll(cfg *Config, now time.Time, prev *Snapshot) ([]*Certificate, error) {
	certs := make([]*Certificate, len(cfg.Certificates))
	errs := make([]error, len(cfg.Certificates))
	// Reading files and checking keys dominate a reload of thousands of
	// certificates; they are independent, so use every core.
	var g errgroup.Group
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	files := &fileCache{}
	for i, cc := range cfg.Certificates {
		g.Go(func() error {
			certs[i], errs[i] = buildCertificate(cc, cfg.Dir, SourceConfig, now, files,
				prev.fileCertificate(cc.Name))
			return nil
		})
	}
	_ = g.Wait() // errors are kept per certificate, in configuration order
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return certs, nil
}

// SnapshotOption changes how NewSnapshot checks what it is given.
type SnapshotOption func(*snapshotOptions)

type snapshotOptions struct {
	allowDangling bool
}

// AllowDangling lets routes name certificates that are not among those given to
// NewSnapshot. The admin API needs it after deleting a certificate that the file's
// routes still name: such a route then matches as before and its requests go out
// without a client certificate, like those of a disabled one.
func AllowDangling() SnapshotOption {
	return func(o *snapshotOptions) { o.allowDangling = true }
}

// NewSnapshot assembles a snapshot from a configuration (defaults applied) and
// certificates already built, in the order given: it compiles the routes of cfg and
// lists the files everything was read from. Names must be unique. A route naming a
// certificate absent from certs is an error unless AllowDangling is given.
func NewSnapshot(cfg *Config, certs []*Certificate, opts ...SnapshotOption) (*Snapshot, error) {
	if cfg == nil {
		return nil, errors.New("snapshot: no configuration given")
	}
	var o snapshotOptions
	for _, opt := range opts {
		opt(&o)
	}
	s, err := newSnapshot(cfg, certs)
	if err != nil {
		return nil, err
	}
	defined := func(name string) bool { _, ok := s.Certificates[name]; return ok }
	if o.allowDangling {
		defined = nil
	}
	routes, errs := compileRoutes(cfg.Routes, defined)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.setRoutes(routes)
	return s, nil
}

// newSnapshot assembles a snapshot of cfg and certs, without its routes.
func newSnapshot(cfg *Config, certs []*Certificate) (*Snapshot, error) {
	s := &Snapshot{
		Config:       cfg,
		Certificates: make(map[string]*Certificate, len(certs)),
		LoadedAt:     time.Now(),
	}
	if err := s.addCertificates(certs); err != nil {
		return nil, err
	}
	s.Files = snapshotFiles(cfg, certs)
	return s, nil
}

// setRoutes puts compiled routes, and their index, in s.
func (s *Snapshot) setRoutes(routes []*Route) {
	s.Routes, s.routes = routes, indexRoutes(routes)
}

// fileCertificate returns the certificate of the config file named name, or nil.
// It may be called on a nil snapshot.
func (s *Snapshot) fileCertificate(name string) *Certificate {
	if s == nil {
		return nil
	}
	if c := s.Certificates[name]; c != nil && c.Source == SourceConfig {
		return c
	}
	return nil
}

func (s *Snapshot) addCertificates(certs []*Certificate) error {
	for i, c := range certs {
		if c == nil {
			return fmt.Errorf("snapshot: certificate %d is missing", i+1)
		}
		if _, dup := s.Certificates[c.Name]; dup {
			return &FieldError{Certificate: c.Name, Err: errorf(ErrBadName,
				"name is used twice; names must be unique")}
		}
		s.Certificates[c.Name] = c
		s.Names = append(s.Names, c.Name)
	}
	return nil
}

// snapshotFiles lists the config file and every certificate file, absolute, each
// once, in the order they were read.
func snapshotFiles(cfg *Config, certs []*Certificate) []string {
	var files []string
	seen := map[string]bool{}
	add := func(p string) {
		if p == "" {
			return
		}
		p = resolvePath("", p)
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	add(cfg.Path)
	if cfg.Proxy.AuthFile != "" {
		add(cfg.Resolve(cfg.Proxy.AuthFile))
	}
	for _, c := range certs {
		for _, f := range c.Files {
			add(f)
		}
	}
	return files
}
