package main

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/audit/balp"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/registry"
)

// admin serves the admin console at /admin/, for the admin role only: the
// app catalog with lifecycle actions (each with a reason), apps due for
// recertification, grants per user and per app with revocation, and an audit
// search with FHIR AuditEvent (BALP) export.
func (sb *Sandbox) admin(w http.ResponseWriter, r *http.Request) {
	u, ok := sb.authenticate(w, r)
	if !ok {
		return
	}
	pageHeaders(w)
	if u.Role != "admin" {
		w.WriteHeader(http.StatusForbidden)
		_ = adminPages.ExecuteTemplate(w, "forbidden", map[string]any{"User": u})
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if !sb.sessions.checkCSRF(r, r.PostFormValue("csrf")) {
			http.Error(w, "the form expired; go back and submit it again", http.StatusForbidden)
			return
		}
	}
	switch path := strings.TrimPrefix(r.URL.Path, "/admin"); {
	case (path == "/" || path == "") && r.Method == http.MethodGet:
		sb.adminApps(w, r, u, "", http.StatusOK)
	case path == "/apps/transition" && r.Method == http.MethodPost:
		sb.adminTransition(w, r, u)
	case path == "/grants" && r.Method == http.MethodGet:
		sb.adminGrants(w, r, u, "", http.StatusOK)
	case path == "/grants/revoke" && r.Method == http.MethodPost:
		sb.adminRevoke(w, r, u)
	case path == "/audit" && r.Method == http.MethodGet:
		sb.adminAudit(w, r, u)
	default:
		http.NotFound(w, r)
	}
}

type adminApp struct {
	ID, Name, ClientID, State, Category, Risk, Scope, ApprovedScope, DUA string
	Due                                                                  string
	Actions                                                              []action
}

type action struct{ To, Label string }

// actions lists the lifecycle moves offered for an app in state s.
func actions(a registry.App) []action {
	switch a.State {
	case registry.Draft:
		return []action{{string(registry.SandboxApproved), "approve for sandbox"}, {string(registry.Retired), "retire"}}
	case registry.SandboxApproved:
		return []action{{string(registry.ProductionApproved), "approve for production"}, {string(registry.Suspended), "suspend"}, {string(registry.Retired), "retire"}}
	case registry.ProductionApproved:
		return []action{{string(registry.Suspended), "suspend"}, {string(registry.Retired), "retire"}}
	case registry.Suspended:
		return []action{{string(a.PreviousState), "reinstate"}, {string(registry.Retired), "retire"}}
	}
	return nil
}

func (sb *Sandbox) adminApps(w http.ResponseWriter, r *http.Request, u smart.User, msg string, status int) {
	ctx := r.Context()
	apps, err := sb.Store.Registry().List(ctx, "")
	if err != nil {
		http.Error(w, "registry unavailable", http.StatusInternalServerError)
		return
	}
	due, _ := sb.Registry.Due(ctx, "", 30*24*time.Hour)
	var list, dueList []adminApp
	for _, a := range apps {
		row := adminApp{ID: a.ID, Name: a.Current.Metadata.ClientName, ClientID: a.ClientID(registry.Sandbox), State: string(a.State),
			Category: string(a.Category), Risk: string(a.RiskTier), Scope: a.Current.Metadata.Scope, ApprovedScope: a.ApprovedScope,
			DUA: a.DUA, Actions: actions(a)}
		if !a.RecertificationDue.IsZero() {
			row.Due = a.RecertificationDue.Format(time.DateOnly)
		}
		list = append(list, row)
	}
	for _, a := range due {
		dueList = append(dueList, adminApp{ID: a.ID, Name: a.Current.Metadata.ClientName, State: string(a.State), Due: a.RecertificationDue.Format(time.DateOnly)})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	w.WriteHeader(status)
	_ = adminPages.ExecuteTemplate(w, "apps", map[string]any{"User": u, "CSRF": sb.sessions.csrf(r), "Apps": list, "Due": dueList, "Message": msg})
}

// adminTransition moves an app through its lifecycle. Production needs an
// approved scope set and a data-use agreement, given on the same form; a
// draft is reviewed on the way to the sandbox. Every step is the registry's,
// so its preconditions, audit and grant revocation apply.
func (sb *Sandbox) adminTransition(w http.ResponseWriter, r *http.Request, u smart.User) {
	ctx := r.Context()
	id, to, reason := r.PostFormValue("app_id"), registry.State(r.PostFormValue("to")), strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		sb.adminApps(w, r, u, "A reason is required for every lifecycle action.", http.StatusBadRequest)
		return
	}
	a, err := sb.Store.Registry().App(ctx, "", id)
	if err == nil && a.State == registry.Draft && to == registry.SandboxApproved {
		_, err = sb.Registry.RecordReview(ctx, "", id, registry.Review{Passed: true, Notes: reason}, u.ID)
	}
	if err == nil && to == registry.ProductionApproved {
		scope := strings.TrimSpace(r.PostFormValue("approved_scope"))
		if scope == "" {
			scope = a.Current.Metadata.Scope
		}
		if _, err = sb.Registry.SetApprovedScope(ctx, "", id, scope, u.ID); err == nil {
			_, err = sb.Registry.SetDUA(ctx, "", id, strings.TrimSpace(r.PostFormValue("dua")), u.ID)
		}
	}
	if err == nil {
		_, err = sb.Registry.Transition(ctx, "", id, to, u.ID, reason)
	}
	switch {
	case errors.Is(err, registry.ErrNotFound):
		sb.adminApps(w, r, u, "No such app.", http.StatusNotFound)
	case err != nil:
		sb.adminApps(w, r, u, "Not done: "+err.Error(), http.StatusConflict)
	default:
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
	}
}

func (sb *Sandbox) adminGrants(w http.ResponseWriter, r *http.Request, u smart.User, msg string, status int) {
	ctx := r.Context()
	user, app := strings.TrimSpace(r.FormValue("user")), strings.TrimSpace(r.FormValue("app"))
	var grants []consent.Grant
	var err error
	switch {
	case user != "":
		grants, err = sb.Consent.Store.ByUser(ctx, "", user)
	case app != "":
		grants, err = sb.Consent.Store.ByClient(ctx, "", app)
	}
	if err != nil {
		http.Error(w, "consent store unavailable", http.StatusInternalServerError)
		return
	}
	if user != "" && app != "" {
		kept := grants[:0]
		for _, g := range grants {
			if g.ClientID == app {
				kept = append(kept, g)
			}
		}
		grants = kept
	}
	w.WriteHeader(status)
	_ = adminPages.ExecuteTemplate(w, "grants", map[string]any{"User": u, "CSRF": sb.sessions.csrf(r), "Grants": grants,
		"QUser": user, "QApp": app, "Message": msg, "Now": time.Now()})
}

func (sb *Sandbox) adminRevoke(w http.ResponseWriter, r *http.Request, u smart.User) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		sb.adminGrants(w, r, u, "A reason is required to revoke a grant.", http.StatusBadRequest)
		return
	}
	err := sb.Consent.Revoke(r.Context(), "", r.PostFormValue("grant_id"), u.ID, reason)
	switch {
	case errors.Is(err, consent.ErrNotFound):
		sb.adminGrants(w, r, u, "No such grant.", http.StatusNotFound)
	case err != nil:
		sb.adminGrants(w, r, u, "Not revoked: "+err.Error(), http.StatusInternalServerError)
	default:
		sb.adminGrants(w, r, u, "Revoked; the app's tokens under that grant no longer work.", http.StatusOK)
	}
}

// adminAudit searches the audit log by patient, user, app, event type and
// time; format=fhir exports the page as a Bundle of BALP AuditEvents.
func (sb *Sandbox) adminAudit(w http.ResponseWriter, r *http.Request, u smart.User) {
	q := r.URL.Query()
	query := audit.Query{Patient: q.Get("patient"), UserID: q.Get("user"), ClientID: q.Get("app"), Cursor: q.Get("cursor"), Limit: 100}
	if t := q.Get("type"); t != "" {
		query.Types = []audit.Type{audit.Type(t)}
	}
	var bad string
	for name, dst := range map[string]*time.Time{"from": &query.From, "to": &query.To} {
		if v := q.Get(name); v != "" {
			t, err := parseWhen(v)
			if err != nil {
				bad = name + ": use 2026-11-27 or 2026-11-27T10:00:00Z"
			}
			*dst = t
		}
	}
	if bad != "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = adminPages.ExecuteTemplate(w, "audit", map[string]any{"User": u, "Q": q, "Error": bad})
		return
	}
	// Reading the audit log is itself audited, before anything is shown.
	interaction := "search"
	if q.Get("format") == "fhir" {
		interaction = "export"
	}
	filter := url.Values{}
	for _, k := range []string{"patient", "user", "app", "type", "from", "to"} {
		if v := q.Get(k); v != "" {
			filter.Set(k, v)
		}
	}
	if err := sb.async.Record(r.Context(), audit.Event{Time: time.Now(), Type: audit.AuditRead, Outcome: audit.Success,
		UserID: u.ID, Role: u.Role, Patient: query.Patient, Interaction: interaction, Resource: "AuditEvent?" + filter.Encode(),
		SourceIP: r.RemoteAddr, UserAgent: r.UserAgent()}); err != nil {
		http.Error(w, "the audit log is unavailable", http.StatusServiceUnavailable)
		return
	}
	page, err := sb.AuditLog.Query(r.Context(), query)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = adminPages.ExecuteTemplate(w, "audit", map[string]any{"User": u, "Q": q, "Error": err.Error()})
		return
	}
	if q.Get("format") == "fhir" {
		b, err := balp.Bundle(page.Records, balp.Options{Observer: "smartkit-sandbox", Server: sb.Issuer})
		if err != nil {
			http.Error(w, "export failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Content-Disposition", `attachment; filename="audit.json"`)
		_, _ = w.Write(b)
		return
	}
	next := ""
	if page.Next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", page.Next)
		next = "/admin/audit?" + nq.Encode()
	}
	fhirQ := r.URL.Query()
	fhirQ.Set("format", "fhir")
	_ = adminPages.ExecuteTemplate(w, "audit", map[string]any{"User": u, "Q": q, "Records": page.Records, "Next": next,
		"Export": "/admin/audit?" + fhirQ.Encode(), "Types": auditTypes})
}

func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, v)
}

// auditTypes are offered in the search form.
var auditTypes = []audit.Type{audit.LaunchMinted, audit.AuthorizeAllowed, audit.AuthorizeRefused, audit.ConsentGranted,
	audit.ConsentRevoked, audit.TokenIssued, audit.TokenRefused, audit.TokenRefreshed, audit.TokenRevoked, audit.GrantRevoked,
	audit.ResourceAllowed, audit.ResourceRefused, audit.AppTransition, audit.ClientAuthFailed, audit.AuditRead}

var adminPages = template.Must(template.New("admin").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>smartkit sandbox: admin console</title></head><body>
<p>Signed in as <strong id="user">{{.User.Name}}</strong> · <a href="/admin/">apps</a> · <a href="/admin/grants">grants</a> · <a href="/admin/audit">audit</a> · <a href="/logout">sign out</a></p>{{end}}
{{define "forbidden"}}{{template "head" .}}<h1>Administrators only</h1><p id="error">The admin console needs the admin role.</p></body></html>{{end}}
{{define "apps"}}{{template "head" .}}<h1>App catalog</h1>
{{if .Message}}<p id="message">{{.Message}}</p>{{end}}
<table id="apps"><tr><th>App</th><th>State</th><th>Category / risk</th><th>Scopes (approved for production)</th><th>Recertify by</th><th>Action</th></tr>
{{range .Apps}}<tr id="app-{{.ID}}"><td>{{.Name}}<br><code>{{.ClientID}}</code></td><td class="state">{{.State}}</td><td>{{.Category}} / {{.Risk}}</td>
<td><code>{{.Scope}}</code>{{if .ApprovedScope}}<br>(<code>{{.ApprovedScope}}</code>){{end}}</td><td>{{.Due}}</td>
<td>{{if .Actions}}<form method="post" action="/admin/apps/transition"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="app_id" value="{{.ID}}">
<select name="to">{{range .Actions}}<option value="{{.To}}">{{.Label}}</option>{{end}}</select>
<input name="reason" placeholder="reason (required)" required> <input name="approved_scope" placeholder="production scopes (default: requested)"> <input name="dua" placeholder="data-use agreement (production)">
<button type="submit">Apply</button></form>{{end}}</td></tr>{{end}}</table>
<h2>Due for recertification within 30 days</h2>
<ul id="due">{{range .Due}}<li>{{.Name}} ({{.State}}), by {{.Due}}</li>{{else}}<li>None.</li>{{end}}</ul></body></html>{{end}}
{{define "grants"}}{{template "head" .}}<h1>Grants</h1>
{{if .Message}}<p id="message">{{.Message}}</p>{{end}}
<form method="get" action="/admin/grants"><label>User <input name="user" value="{{.QUser}}"></label> <label>App (client_id) <input name="app" value="{{.QApp}}"></label> <button type="submit">Show</button></form>
<table id="grants"><tr><th>App</th><th>User</th><th>Patient</th><th>Scopes</th><th>Status</th><th>Created</th><th></th></tr>
{{range .Grants}}<tr><td>{{.AppName}} <code>{{.ClientID}}</code></td><td>{{.UserID}}</td><td>{{.Patient}}</td><td><code>{{.Scope}}</code></td>
<td>{{.Status}}{{if .RevokedBy}} by {{.RevokedBy}}: {{.Reason}}{{end}}</td><td>{{.Created.Format "2006-01-02 15:04"}}</td>
<td>{{if .Live $.Now}}<form method="post" action="/admin/grants/revoke"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="grant_id" value="{{.ID}}">
<input type="hidden" name="user" value="{{$.QUser}}"><input type="hidden" name="app" value="{{$.QApp}}"><input name="reason" placeholder="reason (required)" required> <button type="submit">Revoke</button></form>{{end}}</td></tr>
{{else}}<tr><td colspan="7">Choose a user or an app.</td></tr>{{end}}</table></body></html>{{end}}
{{define "audit"}}{{template "head" .}}<h1>Audit search</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{end}}
<form method="get" action="/admin/audit"><label>Patient <input name="patient" value="{{.Q.Get "patient"}}"></label>
<label>User <input name="user" value="{{.Q.Get "user"}}"></label> <label>App <input name="app" value="{{.Q.Get "app"}}"></label>
<label>Type <input name="type" value="{{.Q.Get "type"}}" list="types"></label><datalist id="types">{{range .Types}}<option value="{{.}}">{{end}}</datalist>
<label>From <input name="from" value="{{.Q.Get "from"}}"></label> <label>To <input name="to" value="{{.Q.Get "to"}}"></label> <button type="submit">Search</button></form>
{{if .Export}}<p><a id="export" href="{{.Export}}">Export this page as FHIR AuditEvents</a></p>{{end}}
<table id="audit"><tr><th>#</th><th>Time</th><th>Type</th><th>Outcome</th><th>App</th><th>User</th><th>Patient</th><th>Scopes / resource</th><th>Reason</th></tr>
{{range .Records}}<tr><td>{{.Seq}}</td><td>{{.Event.Time.Format "2006-01-02 15:04:05"}}</td><td>{{.Event.Type}}</td><td>{{.Event.Outcome}}</td><td>{{.Event.ClientID}}</td>
<td>{{.Event.UserID}}</td><td>{{.Event.Patient}}{{with .Event.Patients}} <small title="{{range $i, $p := .}}{{if $i}} {{end}}{{$p}}{{end}}">+{{len .}} more</small>{{end}}</td><td><code>{{.Event.Scopes}}</code> {{.Event.Interaction}} {{.Event.Resource}}</td><td>{{.Event.Reason}}</td></tr>{{end}}</table>
{{if .Next}}<p><a href="{{.Next}}">Older</a></p>{{end}}</body></html>{{end}}`))
