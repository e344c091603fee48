package main

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart/registry"
)

// ehr serves the EHR shell: the patient list, a chart with the apps approved
// for the sandbox, the app in a sandboxed iframe, and the scriptable launch
// endpoint GET /ehr/launch?client_id=…&launch_uri=…&patient=….
func (sb *Sandbox) ehr(w http.ResponseWriter, r *http.Request) {
	u, ok := sb.authenticate(w, r)
	if !ok {
		return
	}
	pageHeaders(w)
	path := strings.TrimPrefix(r.URL.Path, "/ehr")
	switch {
	case path == "/launch":
		sb.ehrLaunch(w, r, u.ID)
	case path == "/" || path == "":
		pts, _ := sb.Search(r.Context(), "", u, r.URL.Query().Get("q"))
		_ = shellPage.ExecuteTemplate(w, "list", map[string]any{"User": u, "Patients": pts})
	case strings.HasPrefix(path, "/patient/"):
		id := strings.TrimPrefix(path, "/patient/")
		if ok, _ := sb.Allowed(r.Context(), "", u, id); !ok {
			http.NotFound(w, r)
			return
		}
		listed, _ := sb.Registry.Catalog(r.Context(), "", registry.Sandbox, "")
		all, _ := sb.Store.Registry().List(r.Context(), "")
		hasLaunch := map[string]bool{}
		for _, a := range all {
			hasLaunch[a.ID] = a.Current.Metadata.LaunchURI != ""
		}
		var launchable []registry.Listing
		for _, l := range listed {
			if hasLaunch[l.AppID] {
				launchable = append(launchable, l)
			}
		}
		frame := ""
		if c := r.URL.Query().Get("app"); c != "" {
			frame = "/ehr/launch?" + url.Values{"client_id": {c}, "patient": {id}}.Encode()
		}
		sb.fhir.mu.RLock()
		p := sb.fhir.current["Patient/"+id]
		sb.fhir.mu.RUnlock()
		_ = shellPage.ExecuteTemplate(w, "chart", map[string]any{"User": u, "ID": id, "Name": patientName(p), "Apps": launchable, "Frame": frame})
	default:
		http.NotFound(w, r)
	}
}

// ehrLaunch mints an EHR launch for the signed-in user and redirects to the
// app's launch URI with iss and launch.
func (sb *Sandbox) ehrLaunch(w http.ResponseWriter, r *http.Request, user string) {
	q := r.URL.Query()
	clientID, patient := q.Get("client_id"), q.Get("patient")
	c, err := sb.Auth.Clients.Client(r.Context(), "", clientID)
	if err != nil {
		http.Error(w, "unknown or unapproved app", http.StatusBadRequest)
		return
	}
	target := q.Get("launch_uri")
	if target == "" {
		target = c.LaunchURL
	}
	if target == "" || target != c.LaunchURL && !strings.HasPrefix(target, c.LaunchURL) {
		http.Error(w, "launch_uri must be the app's registered launch URL", http.StatusBadRequest)
		return
	}
	if ok, _ := sb.Allowed(r.Context(), "", sb.users[user], patient); !ok {
		http.Error(w, "unknown patient", http.StatusBadRequest)
		return
	}
	yes := true
	l, err := sb.Launches.Mint(r.Context(), launch.Request{ClientID: clientID, UserID: user, FHIRBase: sb.FHIRBase,
		Context: launch.Context{Patient: patient, NeedPatientBanner: &yes}})
	if err != nil {
		http.Error(w, "could not launch", http.StatusInternalServerError)
		return
	}
	appURL, err := l.AppURL(target)
	if err != nil {
		http.Error(w, "bad launch URL", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, appURL, http.StatusFound)
}

var shellPage = template.Must(template.New("shell").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>smartkit sandbox EHR</title></head><body>
<p>Signed in as <strong id="user">{{.User.Name}}</strong> · <a href="/logout">sign out</a></p>{{end}}
{{define "list"}}{{template "head" .}}<h1>Patients</h1>
<form method="get" action="/ehr/"><input name="q" placeholder="search"><button>Search</button></form>
<ul id="patients">{{range .Patients}}<li><a href="/ehr/patient/{{.ID}}">{{.Name}}</a> {{.BirthDate}} ({{.ID}})</li>{{end}}</ul></body></html>{{end}}
{{define "chart"}}{{template "head" .}}<h1 id="chart-name">{{.Name}}</h1><p>Chart {{.ID}}</p>
<h2>Apps</h2><ul id="apps">{{range .Apps}}<li><a class="launch" href="/ehr/patient/{{$.ID}}?app={{.ClientID}}">{{.Name}}</a> <small>{{.Summary}}</small></li>{{else}}<li>No apps approved for the sandbox.</li>{{end}}</ul>
{{if .Frame}}<iframe id="app-frame" title="SMART app" src="{{.Frame}}" sandbox="allow-forms allow-scripts allow-same-origin" referrerpolicy="no-referrer" width="900" height="600"></iframe>{{end}}
</body></html>{{end}}`))
