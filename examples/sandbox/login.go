package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/smart"
)

// sessions are signed cookies (user, expiry and a random session id,
// HMAC-SHA256 under a key kept in the data directory), so any sandbox
// process on the same data serves them. A signed-out session is remembered
// until it would have expired, by the process that signed it out: online_access
// grants end with it (smart.Server.Sessions).
type sessions struct {
	key   []byte
	mu    sync.Mutex
	ended map[string]time.Time // session id → when it would have expired
}

const sessionCookie = "sandbox_session"

// sessionTTL is how long a sign-in lasts.
const sessionTTL = 8 * time.Hour

func (s *sessions) sign(v string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sessions) issue(w http.ResponseWriter, user string) {
	v := user + "|" + strconv.FormatInt(time.Now().Add(sessionTTL).Unix(), 10) + "|" + randid.New()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(v)) + "." + s.sign(v),
		Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// user returns the signed-in user of the request and the session's id
// ("<expiry>.<random>": it names the session, it does not open it).
func (s *sessions) user(r *http.Request) (user, session string, ok bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", "", false
	}
	b64, sig, ok := strings.Cut(c.Value, ".")
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if !ok || err != nil || subtle.ConstantTimeCompare([]byte(sig), []byte(s.sign(string(raw)))) != 1 {
		return "", "", false
	}
	user, rest, _ := strings.Cut(string(raw), "|")
	exp, id, _ := strings.Cut(rest, "|")
	session = exp + "." + id
	if !s.active(session) {
		return "", "", false
	}
	return user, session, true
}

// active reports whether a session has neither expired nor been signed out.
func (s *sessions) active(session string) bool {
	exp, _, _ := strings.Cut(session, ".")
	until, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > until {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ended := s.ended[session]
	return !ended
}

// end signs a session out.
func (s *sessions) end(session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended == nil {
		s.ended = map[string]time.Time{}
	}
	now := time.Now()
	for id, until := range s.ended { // expired ones need no remembering
		if now.After(until) {
			delete(s.ended, id)
		}
	}
	s.ended[session] = now.Add(sessionTTL)
}

// SessionActive is smart.Sessions: online_access lasts while the session
// the user authorized the app in does.
func (s *sessions) SessionActive(_ context.Context, _, session string) (bool, error) {
	return s.active(session), nil
}

// csrf is the anti-forgery token of the request's session: a MAC of the
// session cookie, so it needs no server state and dies with the session.
func (s *sessions) csrf(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return s.sign("csrf|" + c.Value)
}

// checkCSRF reports whether token is the session's anti-forgery token.
func (s *sessions) checkCSRF(r *http.Request, token string) bool {
	want := s.csrf(r)
	return want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

// authenticate is the authorization server's Authenticator: the signed-in
// demo user, or a redirect to the login form that returns to this GET.
func (sb *Sandbox) authenticate(w http.ResponseWriter, r *http.Request) (smart.User, bool) {
	if name, session, ok := sb.sessions.user(r); ok {
		if u, ok := sb.users[name]; ok {
			u.Session = session
			return u, true
		}
	}
	// r.RequestURI, not r.URL: under http.StripPrefix the URL has lost its prefix.
	http.Redirect(w, r, "/login?return="+url.QueryEscape(r.RequestURI), http.StatusFound)
	return smart.User{}, false
}

// safeReturn accepts only a local path, so the login is no open redirect.
func safeReturn(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/ehr/"
	}
	return p
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>smartkit sandbox: sign in</h1>
{{if .Error}}<p id="login-error">{{.Error}}</p>{{end}}
<form method="post" action="/login"><input type="hidden" name="return" value="{{.Return}}">
<label>User <input name="username" value="{{.User}}" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>
<p>Demo users: clinician, patient, admin.</p></body></html>`))

func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
}

func (sb *Sandbox) login(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	ret := safeReturn(r.FormValue("return"))
	if r.Method != http.MethodPost {
		_ = loginPage.Execute(w, map[string]string{"Return": ret})
		return
	}
	user := r.PostFormValue("username")
	_, known := sb.users[user]
	if !known || subtle.ConstantTimeCompare([]byte(r.PostFormValue("password")), []byte(sb.cfg.DemoPassword)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginPage.Execute(w, map[string]string{"Return": ret, "User": user, "Error": "Unknown user or wrong password."})
		return
	}
	sb.sessions.issue(w, user)
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

// logoutPage asks before signing out: the sign-out links are GETs, which
// another site could make the browser send.
var logoutPage = template.Must(template.New("logout").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out</title></head>
<body><h1>smartkit sandbox: sign out</h1>
<form method="post" action="/logout"><button type="submit" id="sign-out">Sign out</button></form>
<p>Apps you allowed "while you stay signed in" stop working when you sign out.</p></body></html>`))

// logout signs out on a POST (the session cookie is SameSite=Lax, so a
// POST from another site arrives without it and signs no one out); a GET
// shows the button.
func (sb *Sandbox) logout(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	if r.Method != http.MethodPost {
		_ = logoutPage.Execute(w, nil)
		return
	}
	if _, session, ok := sb.sessions.user(r); ok {
		sb.sessions.end(session)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
