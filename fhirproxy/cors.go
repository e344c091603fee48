package fhirproxy

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/smartkit/smartkit/smart"
)

// CORS. Browser apps call the FHIR API from their own origin with a bearer
// token. The proxy answers a cross-origin request readably only when
// Proxy.AllowOrigin accepts the request's Origin for the token's client (the
// SMART reading: the origins of its registered redirect URIs), never with
// credentials; the CapabilityStatement is readable from any origin.
// Preflights are answered by the proxy itself, never forwarded, and the
// upstream's own Access-Control headers are dropped.

const (
	corsMethods = "GET, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, X-Request-Id"
	corsExpose  = "Location, Content-Location, ETag, Last-Modified, X-Security-Context"
)

// RegisteredOrigins is a Proxy.AllowOrigin that accepts the origins of the
// client's registered redirect URIs in the tenant's client store. Answers
// are remembered for originTTL, so a browser app's requests do not each
// cost a client-store lookup; a removed redirect URI stops counting within
// that time (a suspended app's tokens stop at once, at the Verifier).
func RegisteredOrigins(clients smart.ClientStore, tenant string) func(ctx context.Context, clientID, origin string) bool {
	var mu sync.Mutex
	type answer struct {
		ok    bool
		until time.Time
	}
	memo := map[[2]string]answer{}
	return func(ctx context.Context, clientID, origin string) bool {
		k, now := [2]string{clientID, origin}, time.Now()
		mu.Lock()
		a, hit := memo[k]
		mu.Unlock()
		if hit && now.Before(a.until) {
			return a.ok
		}
		c, err := clients.Client(ctx, tenant, clientID)
		if err != nil {
			return false // not remembered: a store failure must not stick
		}
		ok := c.AllowsOrigin(origin)
		mu.Lock()
		if len(memo) >= originMemo {
			clear(memo)
		}
		memo[k] = answer{ok, now.Add(originTTL)}
		mu.Unlock()
		return ok
	}
}

const (
	originTTL  = 30 * time.Second
	originMemo = 4096 // entries before the memo starts over
)

// preflight answers a CORS preflight when cross-origin use is configured;
// it reports whether it did. A preflight carries no token, so it admits the
// request shape only; the response to the real request decides readability.
func (p *Proxy) preflight(w http.ResponseWriter, r *http.Request) bool {
	origin := header(r.Header, "Origin")
	if p.AllowOrigin == nil || r.Method != http.MethodOptions || origin == "" || header(r.Header, "Access-Control-Request-Method") == "" {
		return false
	}
	h := w.Header()
	securityHeaders(h)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// allowOrigin makes a response (its headers h) readable by the request's
// origin when the token's client may use it.
func (p *Proxy) allowOrigin(ctx context.Context, h http.Header, origin string, a *access) {
	if origin == "" || p.AllowOrigin == nil {
		return
	}
	h.Add("Vary", "Origin")
	if a == nil || a.tok == nil || !p.AllowOrigin(ctx, a.tok.ClientID, origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExpose)
}
