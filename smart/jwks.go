package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	jwksMaxBytes   = 64 << 10
	jwksMaxAge     = time.Hour
	jwksDefaultAge = 5 * time.Minute
	jwksRefetchGap = 30 * time.Second // an unknown kid refetches at most this often
)

// jwksCache fetches and caches clients' JWKS URLs: https only, bounded
// size, cached no longer than the client's Cache-Control allows (and at most
// an hour), and refetched for an unknown kid at most once per 30 s, so a
// flood of bad assertions cannot turn the server into a fetch amplifier.
type jwksCache struct {
	client  *http.Client
	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	keys      jose.JSONWebKeySet
	expires   time.Time
	lastFetch time.Time
}

func (c *jwksCache) get(ctx context.Context, uri string, now time.Time, refresh bool) (jose.JSONWebKeySet, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*jwksEntry{}
	}
	e := c.entries[uri]
	if e != nil && (!refresh && now.Before(e.expires) || refresh && now.Sub(e.lastFetch) < jwksRefetchGap) {
		keys := e.keys
		c.mu.Unlock()
		return keys, nil
	}
	c.mu.Unlock()
	keys, age, err := c.fetch(ctx, uri)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if e != nil {
			e.lastFetch = now // back off, keep serving what we had
			return e.keys, nil
		}
		c.entries[uri] = &jwksEntry{lastFetch: now, expires: now}
		return jose.JSONWebKeySet{}, err
	}
	c.entries[uri] = &jwksEntry{keys: keys, expires: now.Add(age), lastFetch: now}
	return keys, nil
}

func (c *jwksCache) fetch(ctx context.Context, uri string) (jose.JSONWebKeySet, time.Duration, error) {
	var set jose.JSONWebKeySet
	if !strings.HasPrefix(uri, "https://") {
		return set, 0, errors.New("jwks_uri must be https")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return set, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return set, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, 0, fmt.Errorf("jwks_uri answered %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return set, 0, err
	}
	if len(b) > jwksMaxBytes {
		return set, 0, errors.New("jwks document too large")
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return set, 0, fmt.Errorf("jwks document: %w", err)
	}
	return set, maxAge(resp.Header.Get("Cache-Control")), nil
}

// maxAge reads Cache-Control: no-store/no-cache mean do not cache, max-age is
// honoured up to an hour, and nothing means five minutes.
func maxAge(cc string) time.Duration {
	age := jwksDefaultAge
	for part := range strings.SplitSeq(cc, ",") {
		part = strings.TrimSpace(strings.ToLower(part))
		switch {
		case part == "no-store" || part == "no-cache":
			return 0
		case strings.HasPrefix(part, "max-age="):
			if n, err := strconv.Atoi(strings.TrimPrefix(part, "max-age=")); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		}
	}
	return min(age, jwksMaxAge)
}

// publicOnlyClient returns an HTTP client that refuses to connect to
// loopback, private, link-local, multicast and unspecified addresses (SSRF
// through a registered jwks_uri), with a 10 s timeout and no redirects.
func publicOnlyClient() *http.Client {
	dialer := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
				ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
				return fmt.Errorf("refusing to fetch from non-public address %s", host)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second, MaxResponseHeaderBytes: 16 << 10},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("jwks_uri must not redirect")
		},
	}
}

func (s *Server) httpClient() *http.Client {
	if s.HTTPClient != nil {
		return s.HTTPClient
	}
	return publicOnlyClient()
}
