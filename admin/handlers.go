package admin

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

// AddRequest is the body of POST /v1/certificates.
type AddRequest struct {
	Name               string `json:"name"`
	CertificatePEM     string `json:"certificate_pem"`
	PrivateKeyPEM      string `json:"private_key_pem"`
	Passphrase         string `json:"passphrase,omitempty"`
	CAPEM              string `json:"ca_pem,omitempty"`
	ServerName         string `json:"server_name,omitempty"`
	ServerCAPEM        string `json:"server_ca_pem,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty"`
}

// ReplaceRequest is the body of PUT /v1/certificates/{name}/material. The server
// name and verification settings stay as they are. Passphrase and CAPEM left out
// (nil) keep their stored values; an empty string clears them.
type ReplaceRequest struct {
	CertificatePEM string  `json:"certificate_pem"`
	PrivateKeyPEM  string  `json:"private_key_pem"`
	Passphrase     *string `json:"passphrase,omitempty"`
	CAPEM          *string `json:"ca_pem,omitempty"`
}

// merged returns the passphrase and chain to store: those of the request where
// it gives them, else those stored now.
func (r *ReplaceRequest) merged(stored certconfig.StoredCertificate) (pass, ca string) {
	pass, ca = stored.Passphrase, stored.CAPEM
	if r.Passphrase != nil {
		pass = *r.Passphrase
	}
	if r.CAPEM != nil {
		ca = *r.CAPEM
	}
	return pass, ca
}

// HealthResponse is the body of /healthz and /readyz.
type HealthResponse struct {
	Status       string      `json:"status"` // "ok", "ready" or "not_ready"
	Certificates *int        `json:"certificates,omitempty"`
	LoadedAt     string      `json:"loaded_at,omitempty"`
	LastReload   *ReloadView `json:"last_reload,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	last := reloadView(s.current.Status())
	snap := s.current.Load()
	if snap == nil {
		writeJSON(w, http.StatusServiceUnavailable,
			HealthResponse{Status: "not_ready", LastReload: &last})
		return
	}
	n := len(snap.Certificates)
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ready", Certificates: &n,
		LoadedAt: snap.LoadedAt.UTC().Format(time.RFC3339), LastReload: &last})
}

// snapshot returns the snapshot in force, or answers 503 and returns nil.
func (s *Server) snapshot(w http.ResponseWriter) *certconfig.Snapshot {
	snap := s.current.Load()
	if snap == nil {
		writeError(w, apiErrorf(http.StatusServiceUnavailable, CodeNotReady,
			"no configuration is loaded yet; see /readyz for the last reload error"))
	}
	return snap
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request) {
	if snap := s.snapshot(w); snap != nil {
		writeJSON(w, http.StatusOK, listView(snap, s.current.Status(), s.now()))
	}
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	snap := s.snapshot(w)
	if snap == nil {
		return
	}
	name := r.PathValue("name")
	c, ok := snap.Certificate(name)
	if !ok {
		writeError(w, notFound(name))
		return
	}
	writeJSON(w, http.StatusOK, certificateView(snap, c, s.now()))
}

func (s *Server) add(w http.ResponseWriter, r *http.Request) {
	var req AddRequest
	if e := decodeJSON(w, r, &req); e != nil {
		s.answer(w, r, "add", req.Name, e)
		return
	}
	if e := s.checkAdd(&req); e != nil {
		s.answer(w, r, "add", req.Name, e)
		return
	}
	now := s.now()
	snap, e := s.change(func(st *certconfig.State, base *certconfig.Snapshot) error {
		return addTo(st, base, s.current.Load(), &req, now)
	}, req.Passphrase)
	if e != nil {
		s.answer(w, r, "add", req.Name, e)
		return
	}
	s.logChange(r, "add", req.Name)
	w.Header().Set("Location", "/v1/certificates/"+url.PathEscape(req.Name))
	s.writeView(w, http.StatusCreated, snap, req.Name)
}

// checkAdd validates the request and its material before the change is queued, so
// that mistakes are reported without waiting for other changes.
func (s *Server) checkAdd(req *AddRequest) *APIError {
	if e := checkName(req.Name); e != nil {
		return e
	}
	if e := requireMaterial(req.CertificatePEM, req.PrivateKeyPEM); e != nil {
		return e
	}
	c, err := certconfig.BuildCertificate(addConfig(req), "", certconfig.SourceAPI)
	if err != nil {
		return buildError(err, req.Passphrase)
	}
	return s.checkDates(c)
}

func addConfig(req *AddRequest) certconfig.CertificateConfig {
	return req.stored(time.Time{}).CertificateConfig(req.Name)
}

// stored is the request as the admin state keeps it.
func (req *AddRequest) stored(now time.Time) certconfig.StoredCertificate {
	return certconfig.StoredCertificate{
		CertPEM:            req.CertificatePEM,
		KeyPEM:             req.PrivateKeyPEM,
		Passphrase:         req.Passphrase,
		CAPEM:              req.CAPEM,
		ServerName:         req.ServerName,
		ServerCAPEM:        req.ServerCAPEM,
		InsecureSkipVerify: req.InsecureSkipVerify,
		Enabled:            req.Enabled == nil || *req.Enabled,
		Created:            now,
		Updated:            now,
	}
}

// addTo records a new API certificate in st, refusing a name that is taken.
func addTo(st *certconfig.State, base, cur *certconfig.Snapshot, req *AddRequest,
	now time.Time) error {
	initState(st)
	if defines(base, req.Name) {
		return conflict("certificate %q is defined in the config file; choose another name",
			req.Name)
	}
	if _, ok := st.Certificates[req.Name]; ok || defines(cur, req.Name) {
		return conflict("certificate %q already exists; replace its material with "+
			"PUT /v1/certificates/%s/material or choose another name", req.Name, req.Name)
	}
	st.Certificates[req.Name] = req.stored(now)
	delete(st.Deleted, req.Name)
	return nil
}

func (s *Server) replace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req ReplaceRequest
	if e := decodeJSON(w, r, &req); e != nil {
		s.answer(w, r, "replace", name, e)
		return
	}
	if e := s.checkReplace(name, &req); e != nil {
		s.answer(w, r, "replace", name, e)
		return
	}
	now := s.now()
	snap, e := s.change(func(st *certconfig.State, base *certconfig.Snapshot) error {
		return replaceIn(st, base, name, &req, now)
	}, deref(req.Passphrase))
	if e != nil {
		s.answer(w, r, "replace", name, e)
		return
	}
	s.logChange(r, "replace", name)
	s.writeView(w, http.StatusOK, snap, name)
}

// checkReplace validates the new material with the settings the certificate has
// now. The change itself checks again against the state it applies to.
func (s *Server) checkReplace(name string, req *ReplaceRequest) *APIError {
	if e := requireMaterial(req.CertificatePEM, req.PrivateKeyPEM); e != nil {
		return e
	}
	cur, ok := s.currentCertificate(name)
	if !ok || cur.Source != certconfig.SourceAPI {
		return nil // the change decides between 404 and 409
	}
	pass, ca := req.merged(s.storedCertificate(name))
	cc := certconfig.CertificateConfig{
		Name:               name,
		CertPEM:            req.CertificatePEM,
		KeyPEM:             req.PrivateKeyPEM,
		Passphrase:         pass,
		CAPEM:              ca,
		ServerName:         cur.ServerName,
		ServerCAPEM:        string(cur.ServerCAPEM),
		InsecureSkipVerify: cur.InsecureSkipVerify,
	}
	c, err := certconfig.BuildCertificate(cc, "", certconfig.SourceAPI)
	if err != nil {
		return buildError(err, pass)
	}
	return s.checkDates(c)
}

// storedCertificate is the admin state's entry for name, or the zero value.
func (s *Server) storedCertificate(name string) certconfig.StoredCertificate {
	if s.reloader == nil || s.reloader.Store == nil {
		return certconfig.StoredCertificate{}
	}
	return s.reloader.Store.State().Certificates[name]
}

func (s *Server) currentCertificate(name string) (*certconfig.Certificate, bool) {
	snap := s.current.Load()
	if snap == nil {
		return nil, false
	}
	return snap.Certificate(name)
}

// replaceIn swaps the material of the API certificate name, keeping its settings.
func replaceIn(st *certconfig.State, base *certconfig.Snapshot, name string,
	req *ReplaceRequest, now time.Time) error {
	initState(st)
	if defines(base, name) {
		return conflict("certificate %q is defined in the config file, which is its "+
			"source; change its files there and reload", name)
	}
	sc, ok := st.Certificates[name]
	if !ok {
		return notFound(name)
	}
	sc.CertPEM, sc.KeyPEM = req.CertificatePEM, req.PrivateKeyPEM
	sc.Passphrase, sc.CAPEM = req.merged(sc)
	sc.Updated = now
	st.Certificates[name] = sc
	return nil
}

func (s *Server) setEnabled(enabled bool) http.HandlerFunc {
	action := "disable"
	if enabled {
		action = "enable"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		now := s.now()
		snap, e := s.change(func(st *certconfig.State, base *certconfig.Snapshot) error {
			return enableIn(st, base, name, enabled, now)
		})
		if e != nil {
			s.answer(w, r, action, name, e)
			return
		}
		s.logChange(r, action, name)
		s.writeView(w, http.StatusOK, snap, name)
	}
}

// enableIn records the enabled state: an override for a certificate of the config
// file, the stored flag for one added through the API.
func enableIn(st *certconfig.State, base *certconfig.Snapshot, name string, enabled bool,
	now time.Time) error {
	initState(st)
	if defines(base, name) {
		st.Enabled[name] = enabled
		return nil
	}
	sc, ok := st.Certificates[name]
	if !ok {
		return notFound(name)
	}
	sc.Enabled, sc.Updated = enabled, now
	st.Certificates[name] = sc
	return nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	now := s.now()
	_, e := s.change(func(st *certconfig.State, base *certconfig.Snapshot) error {
		return deleteFrom(st, base, name, now)
	})
	if e != nil {
		s.answer(w, r, "delete", name, e)
		return
	}
	s.logChange(r, "delete", name)
	w.WriteHeader(http.StatusNoContent)
}

// deleteFrom removes an API certificate and remembers that it was deleted, so that
// routes still naming it are reported as dangling.
func deleteFrom(st *certconfig.State, base *certconfig.Snapshot, name string,
	now time.Time) error {
	initState(st)
	if defines(base, name) {
		return conflict("certificate %q is defined in the config file, which is its "+
			"source; remove it there and reload, or disable it here", name)
	}
	if _, ok := st.Certificates[name]; !ok {
		return notFound(name)
	}
	delete(st.Certificates, name)
	delete(st.Enabled, name)
	st.Deleted[name] = now
	return nil
}

// change applies edit through the reloader and translates its errors. secrets are
// masked in any message built from a validation error.
func (s *Server) change(edit func(*certconfig.State, *certconfig.Snapshot) error,
	secrets ...string) (*certconfig.Snapshot, *APIError) {
	if s.reloader == nil {
		return nil, apiErrorf(http.StatusServiceUnavailable, CodeUnavailable,
			"changes are not available: the admin API runs without a state folder")
	}
	snap, err := s.reloader.Change(edit)
	if err == nil {
		return snap, nil
	}
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		return nil, ae
	case errors.Is(err, certconfig.ErrNoStore):
		return nil, apiErrorf(http.StatusServiceUnavailable, CodeUnavailable,
			"changes are not available: set admin.state_dir so that they can be kept")
	case errors.Is(err, certconfig.ErrNotLoaded):
		return nil, apiErrorf(http.StatusServiceUnavailable, CodeNotReady,
			"no configuration is loaded yet; see /readyz for the last reload error")
	}
	if e := validationError(err, secrets...); e != nil {
		return nil, e
	}
	s.log.Error("admin change failed", "error", mask(err.Error(), secrets...))
	return nil, apiErrorf(http.StatusInternalServerError, CodeInternal,
		"the change could not be applied: %s", mask(err.Error(), secrets...))
}

func (s *Server) writeView(w http.ResponseWriter, status int, snap *certconfig.Snapshot,
	name string) {
	c, ok := snap.Certificate(name)
	if !ok {
		writeError(w, apiErrorf(http.StatusInternalServerError, CodeInternal,
			"the change was saved but certificate %q is not in the new configuration", name))
		return
	}
	writeJSON(w, status, certificateView(snap, c, s.now()))
}

// answer writes a refused change and logs it without its material.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, action, name string,
	e *APIError) {
	s.log.Info("admin change refused", "role", roleOf(r), "action", action,
		"certificate", name, "remote", r.RemoteAddr, "status", e.Status, "code", e.Code)
	writeError(w, e)
}

func (s *Server) logChange(r *http.Request, action, name string) {
	s.log.Info("admin change", "role", roleOf(r), "action", action, "certificate", name,
		"remote", r.RemoteAddr)
}

// checkDates refuses an expired certificate: it could not be presented anyway.
func (s *Server) checkDates(c *certconfig.Certificate) *APIError {
	if len(c.TLS.Certificate) > 0 && s.now().After(c.NotAfter) {
		return invalid("certificate_pem", "the certificate expired on %s; send a "+
			"renewed one", certconfig.FormatDate(c.NotAfter))
	}
	return nil
}

func buildError(err error, secrets ...string) *APIError {
	if e := validationError(err, secrets...); e != nil {
		return e
	}
	return invalid("", "%s", mask(err.Error(), secrets...))
}

func requireMaterial(certPEM, keyPEM string) *APIError {
	switch {
	case certPEM == "":
		return invalid("certificate_pem", "is required: the client certificate in PEM")
	case keyPEM == "":
		return invalid("private_key_pem", "is required: the private key in PEM")
	}
	return nil
}

// checkName applies the config file's rules to a certificate name. The loader
// checks the name before anything else, so an otherwise empty configuration is
// enough to learn whether the name passes.
func checkName(name string) *APIError {
	_, err := certconfig.BuildCertificate(certconfig.CertificateConfig{Name: name}, "", "")
	for _, fe := range fieldErrors(err) {
		if fe.Field == "name" || errors.Is(fe.Err, certconfig.ErrBadName) {
			return invalid("name", "%s", fe.Err.Error())
		}
	}
	return nil
}

func defines(snap *certconfig.Snapshot, name string) bool {
	if snap == nil {
		return false
	}
	_, ok := snap.Certificates[name]
	return ok
}

func initState(st *certconfig.State) {
	if st.Certificates == nil {
		st.Certificates = map[string]certconfig.StoredCertificate{}
	}
	if st.Enabled == nil {
		st.Enabled = map[string]bool{}
	}
	if st.Deleted == nil {
		st.Deleted = map[string]time.Time{}
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
