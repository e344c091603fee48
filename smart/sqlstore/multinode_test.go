package sqlstore_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/sqlstore"
)

// cluster is several authorization-server nodes on one database, behind
// one issuer URL; the X-Node header picks the node for a request.
type cluster struct {
	t      *testing.T
	ts     *httptest.Server
	nodes  []*smart.Server
	stores []*sqlstore.Store
	issuer string
	fhir   string
}

func newCluster(t *testing.T, dsn string, n int) *cluster {
	c := &cluster{t: t}
	keys, _ := smart.GenerateKeys()
	ks, _ := smart.NewKeySet(keys) // in production every node signs with the same HSM keys
	clients := &smart.MemoryClients{}
	_ = clients.Add("", smart.Client{ID: "app", TokenEndpointAuthMethod: smart.AuthNone, RedirectURIs: []string{"https://app.example/cb"},
		Scope: "launch/patient offline_access patient/*.rs"})
	c.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if h := r.Header.Get("X-Node"); h != "" {
			i = int(h[0]-'0') % len(c.nodes)
		}
		http.StripPrefix("/auth", c.nodes[i]).ServeHTTP(w, r)
	}))
	t.Cleanup(c.ts.Close)
	c.issuer, c.fhir = c.ts.URL+"/auth", c.ts.URL+"/fhir"
	for range n {
		st := open(t, dsn)
		st.RevocationPoll = 200 * time.Millisecond
		c.stores = append(c.stores, st)
		c.nodes = append(c.nodes, &smart.Server{BaseURL: c.issuer, Tenants: []smart.Tenant{{FHIRBases: []string{c.fhir}}},
			Clients: clients, Store: st.Smart(), Keys: ks, Audit: &audit.Memory{},
			Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) {
				return smart.User{ID: "pat", FHIRUser: "Patient/1", PatientID: "1"}, true
			})})
	}
	return c
}

func (c *cluster) do(node int, method, u string, form url.Values) *http.Response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Node", string(rune('0'+node)))
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// code authorizes on node 0, shows consent on node 1, approves on node 2
// (or on the nodes given).
func (c *cluster) code(nodes ...int) (string, string) {
	c.t.Helper()
	if len(nodes) != 3 {
		nodes = []int{0, 1, 2}
	}
	verifier := randid.New()
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"launch/patient offline_access patient/*.rs"}, "state": {"s"}, "aud": {c.fhir},
		"code_challenge": {pkce.S256(verifier)}, "code_challenge_method": {"S256"}}
	resp := c.do(nodes[0], http.MethodGet, c.issuer+"/authorize?"+q.Encode(), nil)
	resp.Body.Close()
	resp = c.do(nodes[1], http.MethodGet, resp.Header.Get("Location"), nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	field := func(n string) string {
		m := regexp.MustCompile(`name="` + n + `" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			c.t.Fatalf("consent page on node 1: %d %s", resp.StatusCode, page)
		}
		return m[1]
	}
	form := url.Values{"req": {field("req")}, "csrf": {field("csrf")}, "decision": {"approve"}}
	for _, m := range regexp.MustCompile(`name="(scope_\d+)"`).FindAllStringSubmatch(page, -1) {
		form.Set(m[1], "on")
	}
	resp = c.do(nodes[2], http.MethodPost, c.issuer+"/authorize/consent", form)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("code") == "" {
		c.t.Fatalf("no code from node 2: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code"), verifier
}

func tokenForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}}
}

func decodeJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func TestMultiNode(t *testing.T) {
	for name, dsn := range dialects(t) {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, dsn(t), 3)
			ctx := context.Background()
			code, verifier := c.code()
			tok := decodeJSON(t, c.do(1, http.MethodPost, c.issuer+"/token", tokenForm(code, verifier)))
			if tok["access_token"] == nil || tok["refresh_token"] == nil {
				t.Fatalf("redeem on node 1: %v", tok)
			}
			ref := decodeJSON(t, c.do(2, http.MethodPost, c.issuer+"/token",
				url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}))
			if ref["access_token"] == nil {
				t.Fatalf("refresh on node 2: %v", ref)
			}
			// Reusing the rotated token on another node is detected there.
			if m := decodeJSON(t, c.do(0, http.MethodPost, c.issuer+"/token",
				url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})); m["error"] != "invalid_grant" {
				t.Fatalf("reuse on node 0: %v", m)
			}

			// Double redemption raced across nodes: at most one success.
			code, verifier = c.code()
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() {
					if m := decodeJSON(t, c.do(i%3, http.MethodPost, c.issuer+"/token", tokenForm(code, verifier))); m["access_token"] != nil {
						wins.Add(1)
					}
				})
			}
			wg.Wait()
			if wins.Load() > 1 {
				t.Fatalf("%d nodes redeemed one code", wins.Load())
			}

			// Revoke on node 0; node 2's verifier refuses within the documented bound.
			code, verifier = c.code()
			fresh := decodeJSON(t, c.do(0, http.MethodPost, c.issuer+"/token", tokenForm(code, verifier)))
			v2, _ := c.nodes[2].Verifier("", c.fhir)
			vt, err := v2.Verify(ctx, fresh["access_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.nodes[0].RevokeGrant(ctx, "", vt.GrantID, "admin", "test"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			bound := c.stores[2].RevocationPoll + 500*time.Millisecond
			for {
				if _, err := v2.Verify(ctx, fresh["access_token"].(string)); err != nil {
					break
				}
				if time.Since(start) > bound {
					t.Fatalf("node 2 still honours a token revoked on node 0 after %v", time.Since(start))
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("revocation seen on another node after %v (bound %v)", time.Since(start).Round(time.Millisecond), bound)
		})
	}
}

// TestFaultFailsClosed takes the database away mid-flow: nothing is issued,
// and nothing half-written is left behind.
func TestFaultFailsClosed(t *testing.T) {
	for name, dsn := range dialects(t) {
		t.Run(name, func(t *testing.T) {
			d := dsn(t)
			c := newCluster(t, d, 2)
			code, verifier := c.code()
			_ = c.stores[1].Close() // node 1 loses its database
			resp := c.do(1, http.MethodPost, c.issuer+"/token", tokenForm(code, verifier))
			if m := decodeJSON(t, resp); resp.StatusCode != http.StatusInternalServerError || m["access_token"] != nil {
				t.Fatalf("token on a node without its database: %d %v", resp.StatusCode, m)
			}
			// The code was not consumed: the healthy node redeems it once.
			if m := decodeJSON(t, c.do(0, http.MethodPost, c.issuer+"/token", tokenForm(code, verifier))); m["access_token"] == nil {
				t.Fatalf("the healthy node cannot redeem: %v", m)
			}
			// A verifier that cannot reach its revocation data fails closed.
			v1, _ := c.nodes[1].Verifier("", c.fhir)
			code, verifier = c.code(0, 0, 0)
			m := decodeJSON(t, c.do(0, http.MethodPost, c.issuer+"/token", tokenForm(code, verifier)))
			if _, err := v1.Verify(context.Background(), m["access_token"].(string)); err == nil {
				t.Fatal("verified without revocation data")
			}
			// Consent on a node without its database issues no code.
			verifier = randid.New()
			q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"https://app.example/cb"},
				"scope": {"launch/patient patient/*.rs"}, "state": {"s"}, "aud": {c.fhir},
				"code_challenge": {pkce.S256(verifier)}, "code_challenge_method": {"S256"}}
			resp = c.do(1, http.MethodGet, c.issuer+"/authorize?"+q.Encode(), nil)
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); strings.Contains(loc, "code=") || !strings.Contains(loc, "error=server_error") {
				t.Fatalf("authorize without a database: %d %s", resp.StatusCode, loc)
			}
		})
	}
}
