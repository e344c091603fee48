package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// noRedirects returns a copy of hc that follows no redirect, for token
// requests: a redirect is answered to the caller as it came (an error to
// x/oauth2 and to the backend client), never followed with the form.
func noRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// sameOrigin returns a copy of hc that follows a redirect only to the
// origin the first request went to, for the documents the app trusts for
// where they come from (the discovery document, which names the endpoints
// the app sends its users and credentials to; the JWKS, which says whose
// signature an id_token must carry): a server may move them under its own
// name, or from http to https on the default ports, but a document served
// by another host is not the one the app asked for. hc's own CheckRedirect,
// if any, is asked next.
func sameOrigin(hc *http.Client) *http.Client {
	c := *hc
	next := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from, to := via[0].URL, req.URL
		upgrade := from.Scheme == "http" && to.Scheme == "https" && port(from) == "80" && port(to) == "443"
		if !strings.EqualFold(from.Hostname(), to.Hostname()) || !upgrade && (from.Scheme != to.Scheme || port(from) != port(to)) {
			return fmt.Errorf("redirected from %s to another origin (%s://%s)", from.Redacted(), to.Scheme, to.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}
