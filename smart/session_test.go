package smart_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
)

// sessionHost is a host whose users sign in to sessions that can end.
type sessionHost struct {
	mu     sync.Mutex
	ended  map[string]bool
	broken bool // the session store is unreachable
	asked  []string
}

func (h *sessionHost) SessionActive(_ context.Context, user, session string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, user+"/"+session)
	if h.broken {
		return false, errors.New("session store unreachable")
	}
	return !h.ended[session], nil
}

func (h *sessionHost) end(session string) { h.mu.Lock(); h.ended[session] = true; h.mu.Unlock() }

// withSessions makes e's users sign in to session "s-<user>" (none for
// "nobody") and binds online_access to it.
func withSessions(e *env) *sessionHost {
	h := &sessionHost{ended: map[string]bool{}}
	e.srv.Sessions = h
	auth := e.srv.Authenticator
	e.srv.Authenticator = smart.AuthenticatorFunc(func(w http.ResponseWriter, r *http.Request) (smart.User, bool) {
		u, ok := auth.Authenticate(w, r)
		if ok && u.ID != "nobody" {
			u.Session = "s-" + u.ID
		}
		return u, ok
	})
	return h
}

func TestOnlineAccessEndsWithTheSession(t *testing.T) {
	e := newEnv(t)
	h := withSessions(e)
	m := e.tokens("launch/patient patient/*.rs online_access")
	rt := m["refresh_token"].(string)
	resp, m2 := refresh(e, rt, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh while signed in: %d %v", resp.StatusCode, m2)
	}
	if strings.Join(h.asked, ",") != "patient/s-patient" {
		t.Fatalf("sessions asked %v", h.asked)
	}

	h.end("s-patient") // the user signs out of the EHR
	resp, m3 := refresh(e, m2["refresh_token"].(string), nil)
	if resp.StatusCode != http.StatusBadRequest || m3["error"] != "invalid_grant" {
		t.Fatalf("refresh after sign-out: %d %v", resp.StatusCode, m3)
	}
	// The grant is gone: its access token stops at once, and nothing
	// brings the refresh token back.
	if _, err := e.verifier().Verify(context.Background(), m2["access_token"].(string)); err == nil {
		t.Fatal("the access token outlived the session's end")
	}
	h.mu.Lock()
	h.ended = map[string]bool{}
	h.mu.Unlock()
	if resp, _ := refresh(e, m2["refresh_token"].(string), nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("refresh after the grant was revoked: %d", resp.StatusCode)
	}
	found := false
	for _, ev := range e.audit.Of(audit.GrantRevoked) {
		found = found || strings.Contains(ev.Reason, "session has ended") && ev.UserID == "patient"
	}
	if !found {
		t.Error("the session's end was not audited")
	}
}

func TestOfflineAccessIsNotBound(t *testing.T) {
	e := newEnv(t)
	h := withSessions(e)
	// Both asked for: offline wins, and offline does not need the user.
	m := e.tokens("launch/patient patient/*.rs online_access offline_access")
	h.end("s-patient")
	if resp, m2 := refresh(e, m["refresh_token"].(string), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("offline refresh after sign-out: %d %v", resp.StatusCode, m2)
	}
	if len(h.asked) != 0 {
		t.Fatalf("sessions asked for an offline grant: %v", h.asked)
	}
}

func TestOnlineAccessSessionCheckFails(t *testing.T) {
	e := newEnv(t)
	h := withSessions(e)
	m := e.tokens("launch/patient patient/*.rs online_access")
	h.broken = true
	resp, m2 := refresh(e, m["refresh_token"].(string), nil)
	if resp.StatusCode != http.StatusInternalServerError || m2["error"] != "server_error" {
		t.Fatalf("refresh with the session store down: %d %v", resp.StatusCode, m2)
	}
	h.broken = false // a failure to ask is not an answer: the grant stands
	if resp, m3 := refresh(e, m["refresh_token"].(string), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh once the store is back: %d %v", resp.StatusCode, m3)
	}
}

func TestOnlineAccessWithoutASession(t *testing.T) {
	e := newEnv(t)
	withSessions(e)
	// "nobody" signs in without a session the host can vouch for.
	code, verifier := e.code("launch/patient patient/*.rs online_access", "nobody")
	_, m := e.exchange(code, verifier)
	if resp, m2 := refresh(e, m["refresh_token"].(string), nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("online refresh with no session to be bound to: %d %v", resp.StatusCode, m2)
	}
}

func TestOnlineAccessWithoutSessions(t *testing.T) {
	e := newEnv(t) // no Sessions: online_access lasts OnlineTTL
	m := e.tokens("launch/patient patient/*.rs online_access")
	if resp, m2 := refresh(e, m["refresh_token"].(string), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, m2)
	}
}
