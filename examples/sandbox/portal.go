package main

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/registry"
)

// portal serves the developer portal at /portal/: register an app (its
// metadata validated by the registry, sandbox credentials shown once), the
// scope catalog in plain language, and launch tests against chosen patients,
// the awkward ones first. Any signed-in demo user may use it.
func (sb *Sandbox) portal(w http.ResponseWriter, r *http.Request) {
	u, ok := sb.authenticate(w, r)
	if !ok {
		return
	}
	pageHeaders(w)
	switch path := strings.TrimPrefix(r.URL.Path, "/portal"); path {
	case "/", "":
		sb.portalHome(w, r, u)
	case "/register":
		if r.Method == http.MethodPost {
			sb.portalRegister(w, r, u)
			return
		}
		_ = portalPages.ExecuteTemplate(w, "register", registerForm{User: u, CSRF: sb.sessions.csrf(r), Auth: "none", Grant: smart.GrantAuthorizationCode})
	case "/scopes":
		sb.portalScopes(w, r, u)
	default:
		http.NotFound(w, r)
	}
}

// edgePatients are the synthetic patients that break real apps, offered
// first for launch tests.
var edgePatients = []struct{ ID, Why string }{
	{"pt-nodemo", "missing demographics"},
	{"pt-dup-old", "duplicate chart (Patient.link replaced-by)"},
	{"pt-dup-new", "duplicate chart (the surviving record)"},
	{"pt-long", "very long encounter history (paging)"},
	{"pt-deceased", "deceased"},
	{"pt-newborn", "newborn without a given name"},
	{"pt-unicode", "non-ASCII names"},
	{"pt-sensitive", "sensitive records the consent clearance withholds"},
}

type portalApp struct {
	Name, ClientID, State, Scope string
	Launchable                   bool
}

func (sb *Sandbox) portalHome(w http.ResponseWriter, r *http.Request, u smart.User) {
	apps, err := sb.Store.Registry().List(r.Context(), "")
	if err != nil {
		http.Error(w, "registry unavailable", http.StatusInternalServerError)
		return
	}
	var list []portalApp
	for _, a := range apps {
		if a.State != registry.SandboxApproved && a.State != registry.ProductionApproved {
			continue
		}
		list = append(list, portalApp{Name: a.Current.Metadata.ClientName, ClientID: a.ClientID(registry.Sandbox), State: string(a.State),
			Scope: a.Current.Metadata.Scope, Launchable: a.Current.Metadata.LaunchURI != ""})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	type choice struct{ ID, Label string }
	var patients []choice
	for _, e := range edgePatients {
		patients = append(patients, choice{e.ID, e.ID + ": " + e.Why})
	}
	ordinary, _ := sb.Search(r.Context(), "", smart.User{Role: "clinician"}, "pt-0")
	for _, p := range ordinary {
		patients = append(patients, choice{p.ID, p.ID + ": " + p.Name})
	}
	_ = portalPages.ExecuteTemplate(w, "home", map[string]any{"User": u, "Apps": list, "Patients": patients,
		"Export": sb.FHIRBase + "/Group/" + PanelGroup + "/$export"})
}

type registerForm struct {
	User                                           smart.User
	CSRF                                           string
	Name, Redirects, LaunchURI, Scope, Auth, Grant string
	JWKSURI, JWKS, Contact, Error                  string
	Fields                                         []registry.FieldError
	ClientID, Secret, AppState                     string
}

func (sb *Sandbox) portalRegister(w http.ResponseWriter, r *http.Request, u smart.User) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	f := registerForm{User: u, CSRF: sb.sessions.csrf(r),
		Name: strings.TrimSpace(r.PostFormValue("client_name")), Redirects: r.PostFormValue("redirect_uris"),
		LaunchURI: strings.TrimSpace(r.PostFormValue("launch_uri")), Scope: strings.TrimSpace(r.PostFormValue("scope")),
		Auth: r.PostFormValue("token_endpoint_auth_method"), Grant: r.PostFormValue("grant_type"),
		JWKSURI: strings.TrimSpace(r.PostFormValue("jwks_uri")), JWKS: strings.TrimSpace(r.PostFormValue("jwks")),
		Contact: strings.TrimSpace(r.PostFormValue("contact"))}
	if !sb.sessions.checkCSRF(r, r.PostFormValue("csrf")) {
		w.WriteHeader(http.StatusForbidden)
		f.Error = "The form expired; please submit it again."
		_ = portalPages.ExecuteTemplate(w, "register", f)
		return
	}
	m := registry.Metadata{ClientName: f.Name, LaunchURI: f.LaunchURI, Scope: f.Scope, TokenEndpointAuthMethod: f.Auth,
		GrantTypes: []string{f.Grant}, JWKSURI: f.JWKSURI}
	for _, line := range strings.Split(f.Redirects, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			m.RedirectURIs = append(m.RedirectURIs, line)
		}
	}
	if f.JWKS != "" {
		if !json.Valid([]byte(f.JWKS)) {
			w.WriteHeader(http.StatusBadRequest)
			f.Fields = []registry.FieldError{{Field: "jwks", Reason: "is not valid JSON"}}
			_ = portalPages.ExecuteTemplate(w, "register", f)
			return
		}
		m.JWKS = json.RawMessage(f.JWKS)
	}
	if f.Contact != "" {
		m.Contacts = []string{f.Contact}
	}
	category := registry.ClinicianFacing
	if f.Grant == smart.GrantClientCredentials {
		category = registry.BackendPopulation
	}
	app, creds, err := sb.Registry.Create(r.Context(), "", registry.NewApp{Owner: registry.Owner{Name: u.Name}, Category: category,
		RiskTier: registry.Moderate, SupportContact: registry.Contact{Email: f.Contact}, Metadata: m,
		Sandbox: &registry.SandboxApproval{By: "sandbox", Reason: "developer portal self-service"}}, u.ID)
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ve):
		w.WriteHeader(http.StatusBadRequest)
		f.Fields = ve.Fields
		_ = portalPages.ExecuteTemplate(w, "register", f)
		return
	case err != nil:
		w.WriteHeader(http.StatusInternalServerError)
		f.Error = "The registration failed: " + err.Error()
		_ = portalPages.ExecuteTemplate(w, "register", f)
		return
	}
	// The credentials are shown once, on this response only (no-store).
	f.ClientID, f.Secret, f.AppState = creds.SandboxClientID, creds.SandboxSecret, string(app.State)
	w.WriteHeader(http.StatusCreated)
	_ = portalPages.ExecuteTemplate(w, "registered", f)
}

// catalogScopes are the scopes the catalog explains, one per common need.
var catalogScopes = []string{
	"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access",
	"patient/Patient.r", "patient/Observation.rs", "patient/Observation.rs?category=vital-signs",
	"patient/Observation.rs?category=laboratory", "patient/Condition.rs", "patient/MedicationRequest.rs",
	"patient/AllergyIntolerance.rs", "patient/Appointment.rs", "patient/DocumentReference.rs", "patient/*.rs",
	"patient/Observation.c", "patient/*.cruds", "user/Patient.rs", "user/Practitioner.r", "user/*.rs",
	"system/Patient.rs", "system/Observation.rs", "system/*.rs",
}

func (sb *Sandbox) portalScopes(w http.ResponseWriter, r *http.Request, u smart.User) {
	var items []scopes.Description
	for _, s := range catalogScopes {
		if sc, err := scopes.Parse(s); err == nil {
			items = append(items, scopes.Describe(sc))
		}
	}
	data := map[string]any{"User": u, "Items": items}
	if q := strings.TrimSpace(r.URL.Query().Get("scope")); q != "" {
		data["Query"] = q
		set, err := scopes.ParseSet(q)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			data["QueryError"] = err.Error()
		} else {
			data["Explained"] = scopes.DescribeSet(set)
		}
	}
	_ = portalPages.ExecuteTemplate(w, "scopes", data)
}

var portalPages = template.Must(template.New("portal").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>smartkit sandbox: developer portal</title></head><body>
<p>Signed in as <strong id="user">{{.User.Name}}</strong> · <a href="/portal/">apps</a> · <a href="/portal/register">register an app</a> · <a href="/portal/scopes">scope catalog</a> · <a href="/ehr/">EHR</a> · <a href="/logout">sign out</a></p>{{end}}
{{define "home"}}{{template "head" .}}<h1>Developer portal</h1>
<h2>Apps in the sandbox</h2>
<table id="apps"><tr><th>App</th><th>client_id</th><th>State</th><th>Scopes</th><th>Launch test</th></tr>
{{range .Apps}}<tr><td>{{.Name}}</td><td><code>{{.ClientID}}</code></td><td>{{.State}}</td><td><code>{{.Scope}}</code></td>
<td>{{if .Launchable}}<form method="get" action="/ehr/launch"><input type="hidden" name="client_id" value="{{.ClientID}}">
<select name="patient">{{range $.Patients}}<option value="{{.ID}}">{{.Label}}</option>{{end}}</select> <button type="submit">Launch</button></form>{{else}}backend (no launch): try a bulk export of the test panel, <code class="export">GET {{$.Export}}</code> with <code>Prefer: respond-async</code>{{end}}</td></tr>
{{end}}</table></body></html>{{end}}
{{define "register"}}{{template "head" .}}<h1>Register an app</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{end}}
{{if .Fields}}<ul id="field-errors">{{range .Fields}}<li><code>{{.Field}}</code>{{if .Value}} <code>{{.Value}}</code>{{end}}: {{.Reason}}</li>{{end}}</ul>{{end}}
<form method="post" action="/portal/register"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label>Name <input name="client_name" value="{{.Name}}" required></label></p>
<p><label>Grant <select name="grant_type"><option value="authorization_code"{{if eq .Grant "authorization_code"}} selected{{end}}>authorization_code (an app people launch)</option><option value="client_credentials"{{if eq .Grant "client_credentials"}} selected{{end}}>client_credentials (a backend service)</option></select></label></p>
<p><label>Redirect URIs, one per line <textarea name="redirect_uris" rows="3" cols="60">{{.Redirects}}</textarea></label></p>
<p><label>Launch URL <input name="launch_uri" value="{{.LaunchURI}}" size="60"></label></p>
<p><label>Scopes <input name="scope" value="{{.Scope}}" size="80"></label> (see the <a href="/portal/scopes">catalog</a>)</p>
<p><label>Client authentication <select name="token_endpoint_auth_method">
<option value="none"{{if eq .Auth "none"}} selected{{end}}>none (public app, PKCE)</option>
<option value="private_key_jwt"{{if eq .Auth "private_key_jwt"}} selected{{end}}>private_key_jwt (asymmetric key)</option>
<option value="client_secret_basic"{{if eq .Auth "client_secret_basic"}} selected{{end}}>client_secret_basic (secret)</option></select></label></p>
<p><label>JWK Set URL <input name="jwks_uri" value="{{.JWKSURI}}" size="60"></label> or <label>JWK Set <textarea name="jwks" rows="3" cols="60">{{.JWKS}}</textarea></label></p>
<p><label>Contact email <input name="contact" type="email" value="{{.Contact}}"></label></p>
<button type="submit">Register</button></form></body></html>{{end}}
{{define "registered"}}{{template "head" .}}<h1>{{.Name}} is registered</h1>
<p>It is <strong>{{.AppState}}</strong>: it may launch in this sandbox now. Copy the credentials; this page is the only time the secret is shown.</p>
<dl><dt>client_id</dt><dd><code id="client-id">{{.ClientID}}</code></dd>
{{if .Secret}}<dt>client_secret</dt><dd><code id="client-secret">{{.Secret}}</code></dd>{{end}}</dl>
<p><a href="/portal/">Launch-test it</a></p></body></html>{{end}}
{{define "scopes"}}{{template "head" .}}<h1>Scope catalog</h1>
<form method="get" action="/portal/scopes"><label>Explain a scope string <input name="scope" value="{{.Query}}" size="80"></label> <button type="submit">Explain</button></form>
{{if .QueryError}}<p id="scope-error">{{.QueryError}}</p>{{end}}
{{with .Explained}}<div id="explained"><p>{{.Summary}}</p><ul>{{range .Items}}<li><code>{{.Scope}}</code>: {{.Text}}</li>{{end}}</ul></div>{{end}}
<table id="catalog"><tr><th>Scope</th><th>What it lets an app do</th><th>Reads</th><th>Writes</th></tr>
{{range .Items}}<tr><td><code>{{.Scope}}</code></td><td>{{.Text}}</td><td>{{if .Reads}}yes{{end}}</td><td>{{if .Writes}}yes{{end}}</td></tr>{{end}}</table></body></html>{{end}}`))
