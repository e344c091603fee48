package smarttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

func fhirGet(t *testing.T, ehr *smarttest.Server, tok, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ehr.FHIRBase+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := ehr.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestMintTokenAndFHIR(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	patientTok, err := ehr.MintToken("app", "patient/Patient.r patient/Observation.rs", launch.Context{Patient: "smart-2"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/Patient/smart-2":             200,
		"/Patient/smart-1":             404, // outside the compartment looks absent
		"/Observation?patient=smart-2": 200,
		"/Condition":                   403,
		"/Patient":                     403, // r without s
	} {
		if got := fhirGet(t, ehr, patientTok, path); got != want {
			t.Errorf("%s: %d, want %d", path, got, want)
		}
	}
	if got := fhirGet(t, ehr, "", "/Patient/smart-2"); got != 401 {
		t.Errorf("no token: %d", got)
	}
	if got := fhirGet(t, ehr, "", "/metadata"); got != 200 {
		t.Errorf("metadata: %d", got)
	}
	sysTok, err := ehr.MintToken("job", "system/Patient.rs", launch.Context{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fhirGet(t, ehr, sysTok, "/Patient"); got != 200 {
		t.Errorf("system search: %d", got)
	}
	// The JWKS verifies minted tokens for a resource server of the vendor's own.
	keys, err := smart.ParseJWKS(ehr.JWKS())
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	v := &smart.Verifier{Issuer: ehr.Issuer, Audience: ehr.FHIRBase, Keys: keys, Algorithms: []string{smart.ES256},
		Revocation: ehr.Store}
	if tok, err := v.Verify(context.Background(), patientTok); err != nil || tok.Context.Patient != "smart-2" {
		t.Fatalf("verify with the JWKS: %v", err)
	}
}

// TestProductionRefusals: the fake EHR's FHIR API is behind the real
// policy enforcement point, so an app meets the refusals it would meet in
// production (the old fake answered each of these 200), and each is
// audited.
func TestProductionRefusals(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	patientTok, err := ehr.MintToken("app", "patient/Patient.rs patient/Observation.rs", launch.Context{Patient: "smart-2"})
	if err != nil {
		t.Fatal(err)
	}
	userTok, err := ehr.MintToken("app", "user/Patient.rs user/Observation.rs", launch.Context{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tok, path string
		want      int
	}{
		{patientTok, "/Observation?patient=smart-1", 403},             // another patient, named
		{patientTok, "/Observation?subject:Patient.name=Shaw", 403},   // a chain
		{patientTok, "/Patient?_revinclude=Observation:subject", 403}, // reaching outside the compartment
		{patientTok, "/Patient/../Patient/smart-1", 400},              // a dot segment (mounted behind a ServeMux: cleaned, then 404)
		{userTok, "/Observation?_list=sensitive", 403},                // a search by records the default clearance may withhold
		{userTok, "/Patient?_has:Observation:subject:code=8867-4", 403},
	} {
		if got := fhirGet(t, ehr, c.tok, c.path); got != c.want && !(c.want == 400 && got == 404) {
			t.Errorf("%s: %d, want %d", c.path, got, c.want)
		}
	}
	// A count of a search of a type is the proxy's own, of what the token
	// may see.
	for _, path := range []string{"/Observation?_summary=count", "/Patient/smart-1/Observation?_summary=count"} {
		if got := fhirGet(t, ehr, userTok, path); got != http.StatusOK {
			t.Errorf("a count with the default clearance, %s: %d", path, got)
		}
	}
	// A search without a patient is confined to the one in context.
	req, _ := http.NewRequest(http.MethodGet, ehr.FHIRBase+"/Observation", nil)
	req.Header.Set("Authorization", "Bearer "+patientTok)
	resp, err := ehr.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct{ Resource struct{ ID string } }
	}
	_ = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b.Entry) != 1 || b.Entry[0].Resource.ID != "bp-smart-2" {
		t.Errorf("Observation with patient context: %d %+v", resp.StatusCode, b.Entry)
	}
	refused := 0
	for _, ev := range ehr.Audit.Events() {
		if ev.Type == audit.ResourceRefused {
			refused++
		}
	}
	if refused < 5 {
		t.Errorf("%d refusals audited", refused)
	}
	// The CapabilityStatement names the authorization server.
	resp, err = ehr.Client().Get(ehr.FHIRBase + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "oauth-uris") || !strings.Contains(string(body), ehr.Issuer+"/token") {
		t.Errorf("metadata: %s", body)
	}
}

func TestAuthorizeWithoutUI(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{Scopes: "patient/Patient.r"})
	if err := ehr.Register(smarttest.PublicClient("app", "https://app.example/cb")); err != nil {
		t.Fatal(err)
	}
	launchURL, err := ehr.LaunchURL("app", "https://app.example/launch")
	if err != nil {
		t.Fatal(err)
	}
	lq := smarttest.URLValues(launchURL)
	verifier := randid.New()
	authURL := ehr.Issuer + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"app"},
		"redirect_uri": {"https://app.example/cb"}, "scope": {"launch patient/*.rs"}, "state": {"s"},
		"aud": {lq.Get("iss")}, "launch": {lq.Get("launch")}, "code_challenge": {pkce.S256(verifier)},
		"code_challenge_method": {"S256"}}.Encode()
	cb, err := ehr.Authorize(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := smarttest.URLValues(cb)
	if !strings.HasPrefix(cb, "https://app.example/cb") || q.Get("code") == "" || q.Get("iss") != ehr.Issuer {
		t.Fatalf("callback %s", cb)
	}
	resp, err := ehr.Client().PostForm(ehr.Issuer+"/token", url.Values{"grant_type": {"authorization_code"},
		"code": {q.Get("code")}, "code_verifier": {verifier}, "redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if m["scope"] != "launch patient/Patient.r" || m["patient"] != "smart-1" {
		t.Fatalf("Config.Scopes did not cap the grant: %v", m)
	}
}

// TestSensitiveRecord: smart-1's HIV test is withheld from the default
// clearance (a search that lost it is marked REDACTED, a read of it is
// the 404 of a missing record) and shown under Config.Clearance, so an app
// can test both.
func TestSensitiveRecord(t *testing.T) {
	search := func(ehr *smarttest.Server) (int, []string, string) {
		tok, err := ehr.MintToken("app", "patient/Observation.rs", launch.Context{Patient: "smart-1"})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, ehr.FHIRBase+"/Observation", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := ehr.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var b struct {
			Entry []struct{ Resource struct{ ID string } }
		}
		_ = json.Unmarshal(raw, &b)
		var ids []string
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
		}
		return fhirGet(t, ehr, tok, "/Observation/hiv-smart-1"), ids, string(raw)
	}
	read, ids, raw := search(smarttest.NewServer(t, smarttest.Config{}))
	if read != 404 || strings.Join(ids, ",") != "bp-smart-1" || !strings.Contains(raw, "REDACTED") {
		t.Errorf("default clearance: read %d, search %v: %s", read, ids, raw)
	}
	cleared := &consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: []string{"HIV"}}
	read, ids, _ = search(smarttest.NewServer(t, smarttest.Config{Clearance: cleared}))
	if read != 200 || strings.Join(ids, ",") != "bp-smart-1,hiv-smart-1" {
		t.Errorf("cleared for HIV: read %d, search %v", read, ids)
	}
}

// TestBulkExportConstrained: a backend service whose scope for a type is
// query-constrained exports it through the fake EHR. The proxy asks the
// data server for the constraint's matches with _typeFilter, which it
// takes and ignores (as a server may), and leaves out each line that does
// not match: the vital signs, not smart-1's HIV test, for a clearance that
// would release it.
func TestBulkExportConstrained(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{Clearance: &consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: []string{"HIV"}}})
	tok, err := ehr.MintToken("nightly", "system/Observation.rs?category=vital-signs", launch.Context{})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: bearer{tok, ehr.Client().Transport}}
	ctx := context.Background()
	export, err := client.StartExport(ctx, hc, ehr.FHIRBase+"/$export?_type=Observation&_typeFilter="+url.QueryEscape("Observation?code=8867-4"))
	if err != nil {
		t.Fatal(err)
	}
	if ids := exported(t, hc, export); strings.Join(ids, ",") != "bp-smart-1,bp-smart-2,bp-smart-3" {
		t.Errorf("exported %v", ids)
	}
}

// exported waits for an export and returns the ids of its files'
// resources, in order.
func exported(t *testing.T, hc *http.Client, export *client.Export) []string {
	t.Helper()
	ctx := context.Background()
	m, err := export.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range m.Output {
		body, err := client.Download(ctx, hc, f)
		if err != nil {
			t.Fatal(err)
		}
		for res, err := range client.Resources(body) {
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ ID string }
			_ = json.Unmarshal(res, &r)
			ids = append(ids, r.ID)
		}
		body.Close()
	}
	return ids
}

// bearer sends a token with each request.
type bearer struct {
	tok  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.next.RoundTrip(r)
}

// TestBulkExportPatients: a backend service exports two patients' records
// with a POSTed kick-off naming it (client.PostExport). The proxy, whose
// clearance here is short of every label, reads the patient first; one the
// server does not hold reads as missing, and nothing is sent.
func TestBulkExportPatients(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	tok, err := ehr.MintToken("nightly", "system/Patient.rs system/Observation.rs", launch.Context{})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: bearer{tok, ehr.Client().Transport}}
	ctx := context.Background()
	export, err := client.PostExport(ctx, hc, ehr.FHIRBase+"/Patient/$export", client.ExportParams{Types: []string{"Patient", "Observation"},
		Patients: []string{"Patient/smart-2", "Patient/smart-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if ids := exported(t, hc, export); strings.Join(ids, ",") != "smart-1,smart-2,bp-smart-1,bp-smart-2" { // not smart-1's HIV test

		t.Errorf("exported %v", ids)
	}
	var ee *client.ExportError
	if _, err := client.PostExport(ctx, hc, ehr.FHIRBase+"/Patient/$export", client.ExportParams{Patients: []string{"Patient/nobody"}}); !errors.As(err, &ee) ||
		ee.Status != http.StatusNotFound {
		t.Errorf("a patient the server does not hold: %v", err)
	}
}

// TestConstrainedScopesAndTokenSearches: an app granted part of a type
// (SMART v2 granular scopes, patient/Observation.rs?category=laboratory)
// gets only that part from the fake EHR, by search and by id, as in
// production (found by probing: the fake server ignored category, and the
// app read a vital sign, by search and by id). The fake server now answers
// category and code searches, so that an app's own filters can be tested
// too; the proxy's own check of such answers, for servers that ignore the
// parameter, is fhirproxy's TestConstraintCheckedOnResults.
func TestConstrainedScopesAndTokenSearches(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{Clearance: &consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: []string{"HIV"}}})
	ids := func(tok, path string) []string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ehr.FHIRBase+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := ehr.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			ResourceType, ID string
			Entry            []struct{ Resource struct{ ID string } }
		}
		_ = json.NewDecoder(resp.Body).Decode(&b)
		switch {
		case resp.StatusCode != http.StatusOK:
			return []string{strconv.Itoa(resp.StatusCode)}
		case b.ResourceType != "Bundle":
			return []string{b.ID}
		}
		out := []string{}
		for _, e := range b.Entry {
			out = append(out, e.Resource.ID)
		}
		slices.Sort(out)
		return out
	}
	labs, err := ehr.MintToken("app", "patient/Observation.rs?category=laboratory", launch.Context{Patient: "smart-1"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := ehr.MintToken("app", "patient/Observation.rs", launch.Context{Patient: "smart-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tok, path string
		want      []string
	}{
		{labs, "/Observation", []string{"hiv-smart-1"}},
		{labs, "/Observation/bp-smart-1", []string{"404"}},
		{labs, "/Observation/hiv-smart-1", []string{"hiv-smart-1"}},
		{labs, "/Observation?code=8867-4", []string{}},
		{all, "/Observation", []string{"bp-smart-1", "hiv-smart-1"}},
		{all, "/Observation?category=vital-signs", []string{"bp-smart-1"}},
		{all, "/Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", []string{"hiv-smart-1"}},
		{all, "/Observation?category=http://example.org|laboratory", []string{}},
		{all, "/Observation?code=http://loinc.org|8867-4,75622-1", []string{"bp-smart-1", "hiv-smart-1"}},
		{all, "/Observation?code=8867-4&category=laboratory", []string{}},
	} {
		if got := ids(c.tok, c.path); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.path, got, c.want)
		}
	}
}
