package app

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/smartkit/smartkit/smart/client"
)

// App is an http.Handler serving /launch, /callback and / below its mount point.
type App struct {
	Client *client.Config
	// EHROrigins may frame the app (its CSP frame-ancestors).
	EHROrigins []string
	// Base is the app's own URL prefix (e.g. "/app"), for links.
	Base string

	mu       sync.Mutex
	sessions map[string]*client.Session // server-side: tokens never reach the browser
}

const cookieName = "example_app_session"

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client.SecurityHeaders(w.Header(), a.EHROrigins...)
	switch strings.TrimPrefix(r.URL.Path, a.Base) {
	case "/launch":
		a.Client.HandleLaunch(w, r)
	case "/callback":
		a.callback(w, r)
	case "/", "":
		a.home(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	s, err := a.Client.Callback(w, r)
	if err != nil {
		var ae *client.AuthError
		msg := "The launch did not complete."
		if errorsAs(err, &ae) {
			msg = "The health record refused: " + ae.Code + " " + ae.Description
		}
		a.render(w, http.StatusBadRequest, page{Base: a.Base, Error: msg})
		return
	}
	id := make([]byte, 24)
	_, _ = rand.Read(id)
	sid := base64.RawURLEncoding.EncodeToString(id)
	a.mu.Lock()
	if a.sessions == nil {
		a.sessions = map[string]*client.Session{}
	}
	a.sessions[sid] = s
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sid, Path: a.Base + "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	// Drop the code from the URL at once.
	http.Redirect(w, r, a.Base+"/", http.StatusSeeOther)
}

type observation struct {
	When, What, Value string
}

type page struct {
	Base      string
	Error     string
	Patient   string
	PatientID string
	Banner    bool
	Granted   string
	Denied    string
	Missing   []string
	Obs       []observation
	ObsError  string
	// Withheld: the EHR marked the search REDACTED (records the app may
	// not see were left out), which the app says rather than imply that
	// the list is complete.
	Withheld   bool
	FHIRUser   string
	Standalone string
}

func (a *App) session(r *http.Request) *client.Session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[c.Value]
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	s := a.session(r)
	if s == nil {
		iss := ""
		if len(a.Client.Issuers) > 0 {
			iss = a.Client.Issuers[0]
		}
		a.render(w, http.StatusOK, page{Base: a.Base, Standalone: a.Base + "/launch?iss=" + url.QueryEscape(iss)})
		return
	}
	p := page{Base: a.Base, PatientID: s.Context.Patient, Granted: s.Granted.String(), Denied: s.Denied().String(),
		Missing: s.Missing, FHIRUser: s.FHIRUserRef(), Banner: s.Context.NeedPatientBanner == nil || *s.Context.NeedPatientBanner}
	if s.Context.Patient != "" {
		hc := s.Client(r.Context())
		var pt struct {
			Name []struct {
				Family string   `json:"family"`
				Given  []string `json:"given"`
			} `json:"name"`
		}
		if err := getJSON(hc, s.FHIRBase+"/Patient/"+url.PathEscape(s.Context.Patient), &pt); err == nil && len(pt.Name) > 0 {
			p.Patient = strings.TrimSpace(strings.Join(pt.Name[0].Given, " ") + " " + pt.Name[0].Family)
		} else if err != nil {
			p.Patient = "(name not available: " + err.Error() + ")"
		} else {
			p.Patient = "(no name on record)"
		}
		var b struct {
			Meta struct {
				Security []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"security"`
			} `json:"meta"`
			Entry []struct {
				Resource struct {
					Effective string `json:"effectiveDateTime"`
					Code      struct {
						Text string `json:"text"`
					} `json:"code"`
					Value *struct {
						Value float64 `json:"value"`
						Unit  string  `json:"unit"`
					} `json:"valueQuantity"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := getJSON(hc, s.FHIRBase+"/Observation?patient="+url.QueryEscape(s.Context.Patient)+"&_sort=-date&_count=10", &b); err != nil {
			p.ObsError = "Observations are not available: " + err.Error()
		}
		for _, l := range b.Meta.Security {
			p.Withheld = p.Withheld || l.System == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && l.Code == "REDACTED"
		}
		for _, e := range b.Entry {
			o := observation{When: strings.SplitN(e.Resource.Effective, "T", 2)[0], What: e.Resource.Code.Text}
			if e.Resource.Value != nil {
				o.Value = fmt.Sprintf("%g %s", e.Resource.Value.Value, e.Resource.Value.Unit)
			}
			p.Obs = append(p.Obs, o)
		}
	}
	a.render(w, http.StatusOK, p)
}

func getJSON(hc *http.Client, u string, v any) error {
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the FHIR server answered %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

var tmpl = template.Must(template.New("app").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Example SMART app</title></head><body>
<h1>Example SMART app</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{end}}
{{if .Standalone}}<p>Launch me from the EHR, or <a id="standalone" href="{{.Standalone}}">start a standalone launch</a>.</p>{{end}}
{{if .PatientID}}{{if .Banner}}<div id="banner"><strong id="patient-name">{{.Patient}}</strong> <span>({{.PatientID}})</span></div>{{end}}
<h2>Recent observations</h2>
{{if .ObsError}}<p id="obs-error">{{.ObsError}}</p>{{end}}
<table id="observations">{{range .Obs}}<tr><td>{{.When}}</td><td>{{.What}}</td><td>{{.Value}}</td></tr>{{else}}<tr><td>None shared with this app.</td></tr>{{end}}</table>
{{if .Withheld}}<p id="withheld">Some records are not shared with this app: the patient's consent or the hospital's policy withholds them.</p>{{end}}{{end}}
{{if .Granted}}<p>Granted: <code id="granted">{{.Granted}}</code></p>{{end}}
{{if .Denied}}<p>Not granted (the app works without it): <code id="denied">{{.Denied}}</code></p>{{end}}
{{range .Missing}}<p class="missing">The EHR did not provide the {{.}}; the app shows what it can.</p>{{end}}
{{if .FHIRUser}}<p>Signed in as <code id="fhir-user">{{.FHIRUser}}</code></p>{{end}}
</body></html>`))

func (a *App) render(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = tmpl.Execute(w, p)
}
