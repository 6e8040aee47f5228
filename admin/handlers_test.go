package admin

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

func TestAddThenListAndShow(t *testing.T) {
	e := newEnv(t, "")
	p := pki()
	req := addRequest("acme", p.api)
	req.PrivateKeyPEM = encryptedKeyPEM(t, p.api, passphrase)
	req.Passphrase = passphrase
	req.ServerName = "hooks.acme.example"

	r := e.mustStatus(e.call(http.MethodPost, "/v1/certificates", adminToken, req), 201)
	if loc := r.header.Get("Location"); loc != "/v1/certificates/acme" {
		t.Errorf("Location = %q", loc)
	}
	var added CertificateView
	r.decode(t, &added)
	want := CertificateView{Name: "acme", Enabled: true, Source: certconfig.SourceAPI,
		SHA256Fingerprint: fingerprintOf(p.api), ServerName: "hooks.acme.example"}
	checkView(t, added, want)
	if len(added.SANs.DNS) != 1 || added.SANs.DNS[0] != "api.example" {
		t.Errorf("SANs %+v", added.SANs)
	}
	if len(added.Chain) != 1 || !strings.Contains(added.Chain[0], "Admin Test Intermediate") {
		t.Errorf("chain %q", added.Chain)
	}

	listed, ok := findView(e.list(), "acme")
	if !ok {
		t.Fatal("acme is not listed after it was added")
	}
	checkView(t, listed, want)
	checkView(t, e.show("acme"), want)
}

// checkView compares the fields of got that want sets, and the dates' format.
func checkView(t *testing.T, got, want CertificateView) {
	t.Helper()
	if got.Name != want.Name || got.Enabled != want.Enabled || got.Source != want.Source ||
		got.ServerName != want.ServerName {
		t.Errorf("view %s/%v/%s/%q, want %s/%v/%s/%q", got.Name, got.Enabled, got.Source,
			got.ServerName, want.Name, want.Enabled, want.Source, want.ServerName)
	}
	if want.SHA256Fingerprint != "" && got.SHA256Fingerprint != want.SHA256Fingerprint {
		t.Errorf("fingerprint %s, want %s", got.SHA256Fingerprint, want.SHA256Fingerprint)
	}
	if !strings.HasSuffix(got.NotAfter, "Z") || !strings.Contains(got.NotAfter, "T") {
		t.Errorf("not_after %q is not RFC 3339 UTC", got.NotAfter)
	}
	if got.Subject == "" || got.Issuer == "" || got.Serial == "" || got.KeyType == "" {
		t.Errorf("view misses identity fields: %+v", got)
	}
}

func TestAddValidation(t *testing.T) {
	p := pki()
	valid := addRequest("new", p.api)
	with := func(f func(r *AddRequest)) AddRequest {
		r := valid
		f(&r)
		return r
	}
	tests := []struct {
		name      string
		body      any
		status    int
		code      string
		field     string
		inMessage string
	}{
		{"unknown field", `{"name":"x","private_key":"k"}`, 400, CodeInvalidRequest,
			"private_key", "unknown field"},
		{"not JSON", `{"name":`, 400, CodeInvalidRequest, "", ""},
		{"two values", `{"name":"a"} {"name":"b"}`, 400, CodeInvalidRequest, "", "one"},
		{"empty body", ``, 400, CodeInvalidRequest, "", "empty"},
		{"wrong type", `{"name":5}`, 400, CodeInvalidRequest, "name", "string"},
		{"no name", with(func(r *AddRequest) { r.Name = "" }), 400, CodeValidationFailed,
			"name", ""},
		{"bad name", with(func(r *AddRequest) { r.Name = "a b" }), 400, CodeValidationFailed,
			"name", ""},
		{"no certificate", with(func(r *AddRequest) { r.CertificatePEM = "" }), 400,
			CodeValidationFailed, "certificate_pem", "required"},
		{"no key", with(func(r *AddRequest) { r.PrivateKeyPEM = "" }), 400,
			CodeValidationFailed, "private_key_pem", "required"},
		{"not PEM", with(func(r *AddRequest) { r.CertificatePEM = "hello" }), 400,
			CodeValidationFailed, "certificate_pem", ""},
		{"key of another certificate", with(func(r *AddRequest) {
			r.PrivateKeyPEM = string(p.other.KeyPEM())
		}), 400, CodeValidationFailed, "private_key_pem", "does not match"},
		{"wrong passphrase", with(func(r *AddRequest) {
			r.PrivateKeyPEM = encryptedKeyPEM(t, p.api, passphrase)
			r.Passphrase = "not the " + passphrase
		}), 400, CodeValidationFailed, "passphrase", ""},
		{"missing passphrase", with(func(r *AddRequest) {
			r.PrivateKeyPEM = encryptedKeyPEM(t, p.api, passphrase)
		}), 400, CodeValidationFailed, "passphrase", ""},
		{"expired", with(func(r *AddRequest) {
			r.CertificatePEM, r.PrivateKeyPEM = string(p.expired.CertPEM()),
				string(p.expired.KeyPEM())
		}), 400, CodeValidationFailed, "certificate_pem", "expired"},
		{"bad server name", with(func(r *AddRequest) { r.ServerName = "bad name!" }), 400,
			CodeValidationFailed, "server_name", ""},
		{"bad server CA", with(func(r *AddRequest) { r.ServerCAPEM = "nothing" }), 400,
			CodeValidationFailed, "server_ca_pem", ""},
		{"name of the config file", with(func(r *AddRequest) { r.Name = "cfg" }), 409,
			CodeConflict, "", "config file"},
		{"too large", `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413,
			CodeTooLarge, "", ""},
	}
	e := newEnv(t, "")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(http.MethodPost, "/v1/certificates", adminToken, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			ae := r.apiError(t)
			if ae.Code != tc.code || ae.Field != tc.field ||
				!strings.Contains(ae.Message, tc.inMessage) {
				t.Errorf("error %+v, want code %q field %q message containing %q",
					ae, tc.code, tc.field, tc.inMessage)
			}
		})
	}
	if l := e.list(); len(l.Certificates) != 1 {
		t.Errorf("refused adds changed the list: %d certificates", len(l.Certificates))
	}
}

func TestAddDuplicateAPIName(t *testing.T) {
	e := newEnv(t, "")
	e.add(addRequest("acme", pki().api))
	r := e.mustStatus(e.call(http.MethodPost, "/v1/certificates", adminToken,
		addRequest("acme", pki().renewed)), http.StatusConflict)
	if ae := r.apiError(t); ae.Code != CodeConflict || !strings.Contains(ae.Message,
		"already exists") {
		t.Errorf("error %+v", ae)
	}
	if got := e.show("acme").SHA256Fingerprint; got != fingerprintOf(pki().api) {
		t.Error("the refused add changed the certificate")
	}
}

func TestAddDisabled(t *testing.T) {
	e := newEnv(t, "")
	req := addRequest("off", pki().api)
	no := false
	req.Enabled = &no
	if v := e.add(req); v.Enabled {
		t.Error("added with enabled=false but the view says enabled")
	}
}

// withRoute appends a route naming name to the config file and reloads, as an
// operator pointing a route at a certificate added through the API would.
func (e *env) withRoute(host, name string) {
	e.t.Helper()
	e.write("config.toml", baseConfig(fmt.Sprintf(`
[[route]]
host = %q
certificate = %q
`, host, name)))
	if _, err := e.reloader.Reload("test route"); err != nil {
		e.t.Fatal(err)
	}
}

func TestReplaceKeepsSettingsAndReferences(t *testing.T) {
	e := newEnv(t, "")
	p := pki()
	req := addRequest("acme", p.api)
	req.ServerName = "sni.acme.example"
	no := false
	req.Enabled = &no
	before := e.add(req)
	e.withRoute("hooks.acme.example", "acme")

	var after CertificateView
	e.mustStatus(e.call(http.MethodPut, "/v1/certificates/acme/material", adminToken,
		ReplaceRequest{CertificatePEM: chainPEM(p.renewed),
			PrivateKeyPEM: string(p.renewed.KeyPEM())}), 200).decode(t, &after)

	if after.SHA256Fingerprint == before.SHA256Fingerprint ||
		after.SHA256Fingerprint != fingerprintOf(p.renewed) {
		t.Errorf("fingerprint %s, want the renewed one %s", after.SHA256Fingerprint,
			fingerprintOf(p.renewed))
	}
	if after.Name != "acme" || after.ServerName != "sni.acme.example" || after.Enabled {
		t.Errorf("settings changed: %+v", after)
	}
	if len(after.Routes) != 1 || after.Routes[0].Host != "hooks.acme.example" {
		t.Errorf("routes %+v, want the route naming acme", after.Routes)
	}
	if got := e.show("acme").SHA256Fingerprint; got != after.SHA256Fingerprint {
		t.Errorf("show gives %s after replace", got)
	}
}

func TestReplaceRefusals(t *testing.T) {
	e := newEnv(t, "")
	p := pki()
	e.add(addRequest("acme", p.api))
	good := ReplaceRequest{CertificatePEM: string(p.renewed.CertPEM()),
		PrivateKeyPEM: string(p.renewed.KeyPEM())}
	tests := []struct {
		name, path string
		body       any
		status     int
		field      string
	}{
		{"config certificate", "/v1/certificates/cfg/material", good, 409, ""},
		{"unknown certificate", "/v1/certificates/nope/material", good, 404, ""},
		{"key mismatch", "/v1/certificates/acme/material", ReplaceRequest{
			CertificatePEM: good.CertificatePEM, PrivateKeyPEM: string(p.other.KeyPEM())},
			400, "private_key_pem"},
		{"settings are not replaceable", "/v1/certificates/acme/material",
			`{"certificate_pem":"x","private_key_pem":"y","server_name":"z"}`, 400,
			"server_name"},
		{"no key", "/v1/certificates/acme/material", ReplaceRequest{
			CertificatePEM: good.CertificatePEM}, 400, "private_key_pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(http.MethodPut, tc.path, adminToken, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if f := r.apiError(t).Field; f != tc.field {
				t.Errorf("field %q, want %q", f, tc.field)
			}
		})
	}
	if got := e.show("acme").SHA256Fingerprint; got != fingerprintOf(p.api) {
		t.Error("a refused replace changed the certificate")
	}
}

func TestEnableDisable(t *testing.T) {
	tests := []struct{ name, source string }{
		{"cfg", certconfig.SourceConfig},
		{"acme", certconfig.SourceAPI},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			e := newEnv(t, "")
			e.add(addRequest("acme", pki().api))
			for _, step := range []struct {
				action string
				want   bool
			}{{"disable", false}, {"disable", false}, {"enable", true}, {"disable", false}} {
				var v CertificateView
				e.mustStatus(e.call(http.MethodPost, "/v1/certificates/"+tc.name+"/"+
					step.action, adminToken, nil), 200).decode(t, &v)
				if v.Enabled != step.want || v.Source != tc.source {
					t.Fatalf("after %s: enabled %v source %s", step.action, v.Enabled, v.Source)
				}
				if got := e.show(tc.name).Enabled; got != step.want {
					t.Fatalf("after %s: show says enabled %v", step.action, got)
				}
				if snap := e.cur.Load(); snap.Certificates[tc.name].Enabled != step.want {
					t.Fatalf("after %s: the snapshot in force disagrees", step.action)
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, "")
	e.add(addRequest("acme", pki().api))
	e.withRoute("hooks.acme.example", "acme")

	e.mustStatus(e.call(http.MethodDelete, "/v1/certificates/acme", adminToken, nil), 204)
	e.mustStatus(e.call(http.MethodGet, "/v1/certificates/acme", readToken, nil), 404)
	l := e.list()
	if _, ok := findView(l, "acme"); ok {
		t.Error("acme is still listed after delete")
	}
	if len(l.DanglingRoutes) != 1 || l.DanglingRoutes[0].Host != "hooks.acme.example" ||
		l.DanglingRoutes[0].Certificate != "acme" {
		t.Errorf("dangling routes %+v, want the route naming acme", l.DanglingRoutes)
	}

	tests := []struct {
		name   string
		status int
		code   string
	}{
		{"acme", 404, CodeNotFound}, // already deleted
		{"nope", 404, CodeNotFound},
		{"cfg", 409, CodeConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.mustStatus(e.call(http.MethodDelete, "/v1/certificates/"+tc.name,
				adminToken, nil), tc.status)
			if code := r.apiError(t).Code; code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
		})
	}
	if _, ok := findView(e.list(), "cfg"); !ok {
		t.Error("refused delete removed cfg")
	}
}

func TestAddAfterDeleteReusesTheName(t *testing.T) {
	e := newEnv(t, "")
	e.add(addRequest("acme", pki().api))
	e.mustStatus(e.call(http.MethodDelete, "/v1/certificates/acme", adminToken, nil), 204)
	if _, ok := e.reloader.Store.State().Deleted["acme"]; !ok {
		t.Fatal("the state does not remember that acme was deleted")
	}
	if v := e.add(addRequest("acme", pki().renewed)); v.SHA256Fingerprint !=
		fingerprintOf(pki().renewed) {
		t.Errorf("re-added acme has fingerprint %s", v.SHA256Fingerprint)
	}
	if _, ok := e.reloader.Store.State().Deleted["acme"]; ok {
		t.Error("the state still lists acme as deleted after it was added again")
	}
}

// TestChangesSurviveRestartAndReload makes one change of each kind, then checks
// them after a config reload and after a new process opens the same state folder.
func TestChangesSurviveRestartAndReload(t *testing.T) {
	e := newEnv(t, "")
	p := pki()
	e.add(addRequest("kept", p.api))
	e.add(addRequest("gone", p.other))
	e.add(addRequest("rotated", p.api))
	e.mustStatus(e.call(http.MethodPut, "/v1/certificates/rotated/material", adminToken,
		ReplaceRequest{CertificatePEM: string(p.renewed.CertPEM()),
			PrivateKeyPEM: string(p.renewed.KeyPEM())}), 200)
	e.mustStatus(e.call(http.MethodDelete, "/v1/certificates/gone", adminToken, nil), 204)
	e.mustStatus(e.call(http.MethodPost, "/v1/certificates/cfg/disable", adminToken, nil), 200)

	check := func(t *testing.T) {
		l := e.list()
		if v, ok := findView(l, "kept"); !ok || !v.Enabled {
			t.Errorf("kept: listed %v, view %+v", ok, v)
		}
		v, ok := findView(l, "rotated")
		if !ok || v.SHA256Fingerprint != fingerprintOf(p.renewed) {
			t.Errorf("rotated: listed %v with fingerprint %s", ok, v.SHA256Fingerprint)
		}
		if _, ok := findView(l, "gone"); ok {
			t.Error("gone is back")
		}
		if v, ok := findView(l, "cfg"); !ok || v.Enabled {
			t.Errorf("cfg: listed %v, enabled %v; want disabled", ok, v.Enabled)
		}
	}
	t.Run("after a reload of the config file", func(t *testing.T) {
		if _, err := e.reloader.Reload("test"); err != nil {
			t.Fatal(err)
		}
		check(t)
	})
	t.Run("after a restart", func(t *testing.T) {
		e.ts.Close()
		e.start()
		check(t)
	})
}

func TestConcurrentAddsAllLand(t *testing.T) {
	e := newEnv(t, "")
	const n = 20
	certs := []AddRequest{addRequest("", pki().api), addRequest("", pki().renewed),
		addRequest("", pki().other)}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := certs[i%len(certs)]
			req.Name = fmt.Sprintf("parallel-%02d", i)
			statuses[i] = e.call(http.MethodPost, "/v1/certificates", adminToken, req).status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusCreated {
			t.Errorf("add %d: status %d", i, s)
		}
	}
	l := e.list()
	for i := range n {
		if _, ok := findView(l, fmt.Sprintf("parallel-%02d", i)); !ok {
			t.Errorf("parallel-%02d is missing from the list", i)
		}
	}
}

func TestChangesAreLoggedWithoutSecrets(t *testing.T) {
	e := newEnv(t, "")
	req := addRequest("acme", pki().api)
	req.PrivateKeyPEM = encryptedKeyPEM(t, pki().api, passphrase)
	req.Passphrase = passphrase
	e.add(req)
	e.mustStatus(e.call(http.MethodPost, "/v1/certificates/acme/disable", adminToken, nil), 200)
	bad := req
	bad.Name, bad.Passphrase = "acme2", "wrong "+passphrase
	e.mustStatus(e.call(http.MethodPost, "/v1/certificates", adminToken, bad), 400)

	logs := e.logs.String()
	for _, want := range []string{"action=add", "action=disable", "role=admin",
		"certificate=acme", "certificate=acme2", "remote=127.0.0.1:"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	checkNoSecrets(t, "logs", []byte(logs))
}

// TestReplaceKeepsChainUnlessGiven: a replace without ca_pem keeps the stored chain
// (the renewed leaf comes from the same intermediate); an empty ca_pem clears it.
func TestReplaceKeepsChainUnlessGiven(t *testing.T) {
	e := newEnv(t, "")
	p := pki()
	before := e.add(addRequest("acme", p.api))
	if len(before.Chain) != 1 {
		t.Fatalf("chain after add %v, want the intermediate", before.Chain)
	}
	var kept, cleared CertificateView
	e.mustStatus(e.call(http.MethodPut, "/v1/certificates/acme/material", adminToken,
		ReplaceRequest{CertificatePEM: string(p.renewed.CertPEM()),
			PrivateKeyPEM: string(p.renewed.KeyPEM())}), 200).decode(t, &kept)
	if len(kept.Chain) != 1 || kept.Chain[0] != before.Chain[0] {
		t.Errorf("chain after a replace without ca_pem: %v, want %v", kept.Chain, before.Chain)
	}
	empty := ""
	e.mustStatus(e.call(http.MethodPut, "/v1/certificates/acme/material", adminToken,
		ReplaceRequest{CertificatePEM: string(p.renewed.CertPEM()),
			PrivateKeyPEM: string(p.renewed.KeyPEM()), CAPEM: &empty}), 200).decode(t, &cleared)
	if len(cleared.Chain) != 0 {
		t.Errorf("chain after a replace with an empty ca_pem: %v, want none", cleared.Chain)
	}
}
