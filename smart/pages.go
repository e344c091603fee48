package smart

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smartkit/smartkit/scopes"
)

//go:embed templates
var templateFS embed.FS

var defaultTemplates = template.Must(template.ParseFS(templateFS, "templates/pages.html"))

var (
	css = asset("templates/smart.css")
	// js keeps each form from being submitted twice (templates/smart.js).
	js = asset("templates/smart.js")
)

func asset(name string) []byte {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

func serveCSS(w http.ResponseWriter, _ *http.Request) { serveAsset(w, "text/css; charset=utf-8", css) }

func serveJS(w http.ResponseWriter, _ *http.Request) {
	serveAsset(w, "text/javascript; charset=utf-8", js)
}

func serveAsset(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// Page is what every template gets: the issuer URL the page's links and
// forms are relative to, and its title.
type Page struct {
	Base, Title string
}

// ErrorPage is the data of the "error" template.
type ErrorPage struct {
	Page
	Code        string
	Description string
}

// PickerPage is the data of the "picker" template.
type PickerPage struct {
	Page
	ClientName, UserName string
	Request, CSRF, Query string
	Message              string
	Patients             []PatientChoice
}

// ConsentPage is the data of the "consent" template.
type ConsentPage struct {
	Page
	ClientName, UserName, Patient string
	Request, CSRF                 string
	Summary                       string
	Duration                      string // for how long access lasts
	Items                         []ConsentItem
}

// A ConsentItem is one scope on the consent page. Field is the form field
// ("scope_N"): a checkbox, or a choice among narrower sub-scopes when
// Choices is set. Fixed items have no field.
type ConsentItem struct {
	Scope, Text, Field string
	Fixed              bool
	Choices            []ConsentChoice
}

// A ConsentChoice is one option of a ConsentItem: "on" (all of it),
// "category:<code>" (only that category), or "" (none of it).
type ConsentChoice struct {
	Value, Text string
}

func (s *Server) templates() *template.Template {
	if s.Templates != nil {
		return s.Templates
	}
	return defaultTemplates
}

// pageHeaders sets the headers every login-flow page carries: a strict CSP
// (no inline script or style; the server's own script, which keeps forms
// from being submitted twice), framing limited to FrameAncestors, no
// sniffing, no caching, no referrer. formTarget is the redirect URI a form
// on the page may end at; browsers apply form-action to that redirect.
func (s *Server) pageHeaders(w http.ResponseWriter, formTarget string) {
	h := w.Header()
	formAction := "'self'"
	if u, err := url.Parse(formTarget); err == nil && u.Scheme != "" && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	// X-Frame-Options says the same to browsers without frame-ancestors,
	// where it can: it has no allow-list, only DENY and SAMEORIGIN.
	ancestors := "'none'"
	switch {
	case len(s.FrameAncestors) == 0:
		h.Set("X-Frame-Options", "DENY")
	case len(s.FrameAncestors) == 1 && s.FrameAncestors[0] == "'self'":
		ancestors = "'self'"
		h.Set("X-Frame-Options", "SAMEORIGIN")
	default:
		ancestors = strings.Join(s.FrameAncestors, " ")
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; "+
		"form-action "+formAction+"; frame-ancestors "+ancestors)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any, formTarget string) {
	var buf bytes.Buffer
	if err := s.templates().ExecuteTemplate(&buf, name, data); err != nil {
		s.logger().ErrorContext(r.Context(), "smart: template failed", "template", name, "err", err)
		http.Error(w, "page unavailable", http.StatusInternalServerError)
		return
	}
	s.pageHeaders(w, formTarget)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows an error to the user without redirecting anywhere: the
// answer to an unknown client or redirect URI.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, e *Error, _ string) {
	s.render(w, r, status, "error", ErrorPage{Page: Page{info(r).issuer, "Authorization error"}, Code: string(e.Code), Description: e.Description}, "")
}

func (s *Server) pickerPage(w http.ResponseWriter, r *http.Request, p PendingRequest, u User, query, msg string) {
	name := p.ClientID
	if c, err := s.Clients.Client(r.Context(), p.Tenant, p.ClientID); err == nil && c.Name != "" {
		name = c.Name
	}
	patients, err := s.Patients.Search(r.Context(), p.Tenant, u, query)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, oauthErr(ServerError, "the patient search failed"), "")
		return
	}
	s.render(w, r, http.StatusOK, "picker", PickerPage{
		Page: Page{info(r).issuer, "Choose a patient"}, ClientName: name, UserName: u.Name, Request: p.ID, CSRF: p.CSRF, Query: query, Message: msg, Patients: patients,
	}, "")
}

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, p PendingRequest, c *Client, u User, offered scopes.Set) {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	d := scopes.DescribeSet(offered)
	page := ConsentPage{Page: Page{info(r).issuer, "Allow access?"}, ClientName: name, UserName: u.Name, Patient: p.Context.Patient,
		Request: p.ID, CSRF: p.CSRF, Summary: d.Summary, Duration: s.duration(offered)}
	for i, item := range d.Items {
		ci := ConsentItem{Scope: item.Scope, Text: item.Text, Field: "scope_" + strconv.Itoa(i), Fixed: fixedScope(offered.At(i))}
		if _, ok := categoryScope(offered.At(i), ObservationCategories[0]); ok {
			ci.Choices = append(ci.Choices, ConsentChoice{"on", "All of it"})
			for _, code := range ObservationCategories {
				sub, _ := categoryScope(offered.At(i), code)
				ci.Choices = append(ci.Choices, ConsentChoice{"category:" + code, "Only " + scopes.Describe(sub).Text})
			}
			ci.Choices = append(ci.Choices, ConsentChoice{"", "None of it"})
		}
		page.Items = append(page.Items, ci)
	}
	s.render(w, r, http.StatusOK, "consent", page, p.RedirectURI)
}

// duration says in plain language how long a grant of these scopes lasts.
func (s *Server) duration(set scopes.Set) string {
	days := func(d time.Duration) string { return strconv.Itoa(int(d.Hours()/24+0.5)) + " days" }
	switch {
	case set.Has("offline_access"):
		return "Until you revoke it: the app keeps access when you are not using it, for up to " + days(ttl(s.RefreshTTL, DefaultRefreshTTL)) + "."
	case set.Has("online_access"):
		return "While you stay signed in, for up to " + strconv.Itoa(int(ttl(s.OnlineTTL, DefaultOnlineTTL).Hours())) + " hours."
	}
	return "For this visit only: about " + strconv.Itoa(int(ttl(s.AccessTokenTTL, DefaultAccessTokenTTL).Minutes())) + " minutes."
}
