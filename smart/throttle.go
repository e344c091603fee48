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
	// may make naming one client, in a burst refilled over
	// DefaultThrottleWindow.
	DefaultSourceFailures = 20
	// DefaultSourceAllFailures is how many failed attempts one source
	// address may make whatever clients they name.
	DefaultSourceAllFailures = 200
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
// from two buckets of the caller's source address: one for the client the
// request named (SourceFailures) and one for all clients (SourceAllFailures,
// against one address trying many). A failed authentication as a registered
// client with a secret also takes one from that client's bucket
// (ClientFailures): a secret may be weak and guessed from many places at
// once, while keys, codes and refresh tokens cannot be, and charging their
// client would only let anyone lock it out. Buckets refill evenly over
// Window. While a bucket the request would draw on is empty, the endpoint
// answers 429 with Retry-After and a temporarily_unavailable error before
// it looks at any credential.
//
// Requests that succeed, or fail for another reason, cost nothing, so a
// busy backend service is never slowed by its own traffic; and one client
// failing over and over (a job with a stale secret) exhausts only its own
// budget at that address, not that of every client behind the same one.
// Requests in flight hold one from their source's buckets, so concurrent
// guesses are bounded too.
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
	// SourceFailures, SourceAllFailures, ClientFailures (for clients with
	// a secret) and Window: see the defaults.
	SourceFailures    int
	SourceAllFailures int
	ClientFailures    int
	Window            time.Duration
	// SourceOf names the caller's source; nil means the IP of
	// r.RemoteAddr (IPv6 by its /64, what one host is usually given).
	// Behind a load balancer, return the address it vouches for: otherwise
	// every caller is one source, sharing SourceAllFailures.
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

// The kinds of bucket, which prefix their keys.
const (
	perSource = 's' // a source naming one client
	allSource = 'a' // a source, whatever client
	perClient = 'c' // a client with a secret, from anywhere
)

func (t *Throttle) capacity(kind byte) float64 {
	n, def := t.SourceFailures, DefaultSourceFailures
	switch kind {
	case allSource:
		n, def = t.SourceAllFailures, DefaultSourceAllFailures
	case perClient:
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
	first bool // the first refusal of the episode: audit it
	kind  byte // whose bucket is empty
}

// keys are the bucket keys of one request.
type keys struct{ source, all, client string }

func keysOf(source, client string) keys {
	return keys{source: string(perSource) + "\x00" + source + "\x00" + client,
		all: string(allSource) + "\x00" + source, client: string(perClient) + "\x00" + client}
}

// admit checks the buckets a request draws on (client is the tenant and id
// it names); when all have room it takes one from each of its source's, for
// settle to give back or keep.
func (t *throttler) admit(now time.Time, k keys) *throttled {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.cfg.window()
	empty := func(b *bucket, kind byte) *throttled {
		if b.refill(now, w); b.left >= 1 {
			return nil
		}
		first := !b.noted
		b.noted = true
		return &throttled{retry: b.wait(w), first: first, kind: kind}
	}
	if b := t.buckets[k.client]; b != nil { // only clients with a secret have one
		if th := empty(b, perClient); th != nil {
			return th
		}
	}
	src, all := t.bucket(now, k.source, perSource), t.bucket(now, k.all, allSource)
	if th := empty(src, perSource); th != nil {
		return th
	}
	if th := empty(all, allSource); th != nil {
		return th
	}
	src.left--
	all.left--
	return nil
}

// settle ends an admitted request: a failed guess keeps its source's
// tokens, and costs the named client one when charge is set (it failed as a
// registered client with a secret); anything else gives the tokens back.
func (t *throttler) settle(now time.Time, k keys, failed, charge bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.cfg.window()
	if !failed {
		for _, key := range [...]string{k.source, k.all} {
			if b := t.buckets[key]; b != nil {
				b.refill(now, w)
				b.left = math.Min(b.cap, b.left+1)
			}
		}
		return
	}
	if charge {
		b := t.bucket(now, k.client, perClient)
		b.refill(now, w)
		b.left = math.Max(0, b.left-1)
	}
}

// bucket returns the bucket of key, making a full one of its kind.
func (t *throttler) bucket(now time.Time, key string, kind byte) *bucket {
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
	c := t.cfg.capacity(kind)
	b := &bucket{left: c, at: now, cap: c}
	t.buckets[key] = b
	return b
}

// throttleState is what the request's endpoint learnt for settle.
type throttleState struct {
	admitted bool
	keys     keys
	failed   bool // a credential, code or refresh token was wrong
	charge   bool // it failed as a registered client with a secret
}

// admitThrottled runs the throttle for a request authenticating a client,
// claimed the client id it names; it returns the error to answer with when
// the request may not proceed.
func (s *Server) admitThrottled(r *http.Request, claimed string) *Error {
	if s.Throttle.Disabled {
		return nil
	}
	in := info(r)
	st := &in.throttle
	st.keys = keysOf(s.Throttle.source(r), in.tenant.ID+"\x00"+claimed)
	th := s.throttler.admit(s.now(), st.keys)
	if th == nil {
		st.admitted = true
		return nil
	}
	secs := int64(math.Ceil(th.retry.Seconds()))
	if th.first {
		_ = s.record(r, auditThrottled(th.kind, claimed, secs))
	}
	return &Error{Code: TemporarilyUnavailable, Description: "too many failed attempts; retry later", retryAfter: max(secs, 1)}
}

// failedGuess marks the request as a failed guess; charge when it failed
// as a registered client with a secret (else its source alone pays).
func (s *Server) failedGuess(r *http.Request, charge bool) {
	in := info(r)
	in.throttle.failed = true
	in.throttle.charge = in.throttle.charge || charge
}

// settleThrottle ends the request's turn; deferred by the endpoints that
// authenticate clients.
func (s *Server) settleThrottle(r *http.Request) {
	if st := &info(r).throttle; st.admitted {
		s.throttler.settle(s.now(), st.keys, st.failed, st.charge)
	}
}

// auditThrottled is the event of an episode's first refusal.
func auditThrottled(kind byte, claimed string, secs int64) audit.Event {
	reason := "too many failed attempts from this source naming this client"
	switch kind {
	case allSource:
		reason = "too many failed attempts from this source"
	case perClient:
		reason = "too many failed attempts naming this client"
	}
	return audit.Event{Type: audit.TokenRefused, Outcome: audit.Failure, Severity: audit.Security, ClientID: safeName(claimed),
		Reason: "throttled: " + reason + "; refused for " + strconv.FormatInt(secs, 10) + " s (later refusals until then are not audited)"}
}
