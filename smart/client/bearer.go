package client

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// Credentials go only where they are for. An access token is for one FHIR
// server (its aud), so it goes with the requests for that base and no
// others: not with a request the app makes for an attachment's URL, a
// reference to another server or a page link that leads elsewhere, and not
// with a redirect the FHIR server answers with (net/http drops an
// Authorization header on a redirect to another host, but a transport that
// adds one puts it back). A token request carries a code and its
// verifier, a refresh token, or a client secret or assertion, and a 307 or
// 308 would make net/http post them again to wherever it points; token
// requests follow no redirect.

// bearer is the transport of the FHIR clients: it adds the token to the
// requests for base, and with retry refreshes it once after a 401 from
// there.
type bearer struct {
	base  *url.URL // nil: the token goes nowhere (see newBearer)
	token func(force bool) (*oauth2.Token, error)
	retry bool
	next  http.RoundTripper
}

// errNoBase is what a request for any server gets from a client whose
// FHIR base could not be read: with no base, no request may carry the
// token, and one that goes without it would fail in a stranger way.
var errNoBase = errors.New("client: the FHIR base is missing or not an absolute URL, so no request may carry the token")

func newBearer(fhirBase string, token func(bool) (*oauth2.Token, error), retry bool, next http.RoundTripper) *bearer {
	if next == nil {
		next = http.DefaultTransport
	}
	b := &bearer{token: token, retry: retry, next: next}
	if u, err := url.Parse(fhirBase); err == nil && u.IsAbs() && u.Host != "" {
		b.base = u
	}
	return b
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.base == nil {
		return nil, errNoBase
	}
	if !forTheBase(b.base, req.URL) {
		return b.next.RoundTrip(req)
	}
	tok, err := b.token(false)
	if err != nil {
		return nil, err
	}
	resp, err := b.next.RoundTrip(withToken(req, tok))
	if !b.retry || err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be sent twice
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	tok, err = b.token(true)
	if err != nil {
		return resp, nil
	}
	resp.Body.Close()
	return b.next.RoundTrip(withToken(retry, tok))
}

func withToken(req *http.Request, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return r
}

// forTheBase reports whether u is the FHIR base or below it: the same
// scheme, the same host (case aside) and port (a scheme's default port
// written or not), and a path that is the base's or continues it after a
// slash. https://ehr.example/fhir covers https://ehr.example/fhir/Patient,
// not https://ehr.example/fhir2 nor https://ehr.example/auth.
func forTheBase(base, u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Hostname(), base.Hostname()) ||
		port(u) != port(base) || u.User != nil {
		return false
	}
	bp := strings.TrimSuffix(base.EscapedPath(), "/")
	p := u.EscapedPath()
	return p == bp || strings.HasPrefix(p, bp+"/")
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}
