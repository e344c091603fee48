package smart

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/smartkit/smartkit/audit"
)

// Defaults for Throttle fields left zero.
const (
	// DefaultSourceFailures is how many failed attempts one source address
	// may make in a burst, refilled over DefaultThrottleWindow.
	DefaultSourceFailures = 20
	// DefaultClientFailures is how many failed authentications may name one
	// registered client with a secret, from anywhere, in a burst.
	DefaultClientFailures = 100
	// DefaultThrottleWindow is how long an emptied bucket takes to refill.
	DefaultThrottleWindow = time.Minute
	// DefaultThrottleKeys bounds the buckets a Server keeps.
	DefaultThrottleKeys = 100_000
)

// Throttle limits failed attempts at the token, introspection and
// revocation endpoints: guessing a client secret, an authorization code or
// a refresh token. Each failure (invalid_client, invalid_grant) takes one
// from a bucket of the caller's source address, and a failed client
// authentication against a registered client with a secret also one from
// that client's bucket (a secret may be weak and guessed from many places
// at once; keys, codes and refresh tokens cannot be, and charging their
// client would only let anyone lock it out). Buckets refill evenly over
// Window. While either bucket is empty the endpoint answers 429 with
// Retry-After and a temporarily_unavailable error before it looks at any
// credential.
// Requests that succeed, or fail for another reason, cost nothing, so a
// busy backend service is never slowed by its own traffic. Requests in
// flight hold one from their source's bucket, so concurrent guesses are
// bounded too.
//
// Buckets live in memory, per Server: with N nodes a source gets N times
// the budget. The first refusal of each episode (a bucket emptied until it
// refills) is audited at security severity, the rest of the episode is not,
// so a flood cannot flood the audit trail.
//
// A client with a secret named by failing attempts from many sources can be
// refused to everyone for a while: ClientFailures bounds distributed
// guessing at the price of that. Clients that authenticate with a private
// key JWT are never refused for what others send in their name.
type Throttle struct {
	// SourceFailures, ClientFailures (for clients with a secret) and
	// Window: see the defaults.
	SourceFailures int
	ClientFailures int
	Window         time.Duration
	// SourceOf names the caller's source; nil means the IP of
	// r.RemoteAddr (IPv6 by its /64, what one host is usually given).
	// Behind a load balancer, return the address it vouches for.
	SourceOf func(r *http.Request) string
	// MaxKeys bounds the buckets kept; 0 means DefaultThrottleKeys. When
	// full, refilled buckets are dropped first, then arbitrary ones down to
	// nine tenths of it.
	MaxKeys int
	// Disabled turns the throttle off (a host limiting in front of the
	// Server).
	Disabled bool
}

func (t *Throttle) window() time.Duration { return ttl(t.Window, DefaultThrottleWindow) }

func (t *Throttle) capacity(client bool) float64 {
	n, def := t.SourceFailures, DefaultSourceFailures
	if client {
		n, def = t.ClientFailures, DefaultClientFailures
	}
	if n <= 0 {
		n = def
	}
	return float64(n)
}

func (t *Throttle) source(r *http.Request) string {
	if t.SourceOf != nil {
		return t.SourceOf(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// throttler holds the buckets of one Server.
type throttler struct {
	cfg     *Throttle
	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is a token bucket of failures allowed.
type bucket struct {
	left  float64
	at    time.Time // when left was last brought up to date
	cap   float64
	noted bool // this episode's first refusal has been audited
}

func (b *bucket) refill(now time.Time, window time.Duration) {
	if d := now.Sub(b.at); d > 0 {
		b.left = math.Min(b.cap, b.left+b.cap*float64(d)/float64(window))
		b.at = now
	}
	if b.left >= 1 {
		b.noted = false
	}
}

// wait is how long until the bucket holds one again.
func (b *bucket) wait(window time.Duration) time.Duration {
	return time.Duration(math.Ceil((1 - b.left) * float64(window) / b.cap))
}

// throttled is the outcome of admit when the request may not proceed.
type throttled struct {
	retry time.Duration
	first bool   // the first refusal of the episode: audit it
	whose string // "source" or "client"
}

// admit checks the request's source and the client it names; when both
// have room it takes one from the source's bucket, for settle to give back
// or keep.
func (t *throttler) admit(now time.Time, source, client string) *throttled {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.cfg.window()
	if client != "" {
		if b := t.buckets["c\x00"+client]; b != nil {
			if b.refill(now, w); b.left < 1 {
				first := !b.noted
				b.noted = true
				return &throttled{retry: b.wait(w), first: first, whose: "client"}
			}
		}
	}
	b := t.bucket(now, "s\x00"+source, false)
	if b.refill(now, w); b.left < 1 {
		first := !b.noted
		b.noted = true
		return &throttled{retry: b.wait(w), first: first, whose: "source"}
	}
	b.left--
	return nil
}

// settle ends an admitted request: a failed guess keeps the source's
// token and costs the named client one (client is "" unless it named a
// registered client with a secret); anything else gives the source's token
// back.
func (t *throttler) settle(now time.Time, source, client string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.cfg.window()
	if !failed {
		if b := t.buckets["s\x00"+source]; b != nil {
			b.refill(now, w)
			b.left = math.Min(b.cap, b.left+1)
		}
		return
	}
	if client != "" {
		b := t.bucket(now, "c\x00"+client, true)
		b.refill(now, w)
		b.left = math.Max(0, b.left-1)
	}
}

// bucket returns the bucket of key, making a full one (room permitting).
func (t *throttler) bucket(now time.Time, key string, client bool) *bucket {
	if b := t.buckets[key]; b != nil {
		return b
	}
	if t.buckets == nil {
		t.buckets = map[string]*bucket{}
	}
	limit := t.cfg.MaxKeys
	if limit <= 0 {
		limit = DefaultThrottleKeys
	}
	if len(t.buckets) >= limit {
		// Refilled buckets are as good as none. If that is not enough,
		// arbitrary ones go too, down to nine tenths of the limit, so the
		// sweep (which holds the lock) runs once per many new sources, not
		// for each.
		w := t.cfg.window()
		for k, b := range t.buckets {
			if b.refill(now, w); b.left >= b.cap {
				delete(t.buckets, k)
			}
		}
		for k := range t.buckets {
			if len(t.buckets) < limit-limit/10 {
				break
			}
			delete(t.buckets, k)
		}
	}
	c := t.cfg.capacity(client)
	b := &bucket{left: c, at: now, cap: c}
	t.buckets[key] = b
	return b
}

// throttleState is what the request's endpoint learnt for settle.
type throttleState struct {
	admitted bool
	source   string
	failed   bool   // a credential, code or refresh token was wrong
	client   string // tenant and id of the registered client with a secret it failed as
}

// admitThrottled runs the throttle for a request authenticating a client,
// returning the error to answer with when it may not proceed.
func (s *Server) admitThrottled(r *http.Request, claimed string) *Error {
	if s.Throttle.Disabled {
		return nil
	}
	in := info(r)
	st := &in.throttle
	st.source = s.Throttle.source(r)
	var client string
	if claimed != "" {
		client = in.tenant.ID + "\x00" + claimed
	}
	th := s.throttler.admit(s.now(), st.source, client)
	if th == nil {
		st.admitted = true
		return nil
	}
	secs := int64(math.Ceil(th.retry.Seconds()))
	if th.first {
		_ = s.record(r, auditThrottled(th.whose, claimed, secs))
	}
	return &Error{Code: TemporarilyUnavailable, Description: "too many failed attempts; retry later", retryAfter: max(secs, 1)}
}

// failedGuess marks the request as a failed guess, against client (a
// registered client with a secret) or "" (charged to its source only).
func (s *Server) failedGuess(r *http.Request, client string) {
	in := info(r)
	in.throttle.failed = true
	if client != "" {
		in.throttle.client = in.tenant.ID + "\x00" + client
	}
}

// settleThrottle ends the request's turn; deferred by the endpoints that
// authenticate clients.
func (s *Server) settleThrottle(r *http.Request) {
	if st := &info(r).throttle; st.admitted {
		s.throttler.settle(s.now(), st.source, st.client, st.failed)
	}
}

// auditThrottled is the event of an episode's first refusal.
func auditThrottled(whose, claimed string, secs int64) audit.Event {
	reason := "too many failed attempts from this source"
	if whose == "client" {
		reason = "too many failed attempts naming this client"
	}
	return audit.Event{Type: audit.TokenRefused, Outcome: audit.Failure, Severity: audit.Security, ClientID: safeName(claimed),
		Reason: "throttled: " + reason + "; refused for " + strconv.FormatInt(secs, 10) + " s (later refusals until then are not audited)"}
}
