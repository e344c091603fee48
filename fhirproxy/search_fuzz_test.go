package fhirproxy_test

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
)

// FuzzSearchForms: a search POSTed to _search with a form body is the
// same search as the GET: the proxy allows or refuses both alike, sends
// both upstream with the same parameters as the server reads them, and
// answers both with the same records. A parameter checked in one form
// and not the other would break it. The search is of a type, of a
// patient's compartment (one's own, another's) or of the system (which
// searches Observations).
func FuzzSearchForms(f *testing.F) {
	for _, s := range []string{
		"", "category=laboratory&_elements=code", "patient=p2", "subject=Patient/p2", "subject:Patient=p2", "patient=p1,p2",
		"subject.name=One", "subject:Patient.name=One", "_include=Observation:subject", "_revinclude=Provenance:target",
		"_has:Condition:subject:code=x", "category:not=laboratory", "_id=lab-2", "_count=5000", "_count=x", "_count",
		"_elements=code&_elements=subject", "_summary=count", "_contained=true", "_query=everything", "category=a%26b",
		"_sort=subject.name", "patient=Patient%2Fp2", "_format=xml", "_pretty=true", "_total=accurate",
	} {
		for which := range uint8(7 * len(searchLevels)) {
			f.Add(s, which)
		}
	}
	fx := newFixture(&testing.T{})
	// (A search of the system needs s on every type: the last two.)
	tokens := append(endToEndTokens(fx), fx.token("user/*.rs", nil), fx.token("user/*.rs", everyLabel()))
	f.Fuzz(func(t *testing.T, query string, which uint8) {
		if !requestTarget("Observation?" + query) {
			return
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		level := searchLevels[int(which)/len(tokens)%len(searchLevels)]
		if level.get == "/" {
			query = strings.TrimPrefix(query+"&_type=Observation", "&")
		}
		fx.up.reset()
		get := fx.audited(t, func() result { return fx.do("GET", level.get+"?"+query, tok, "") })
		gotGet := fx.up.requests()
		fx.up.reset()
		post := fx.audited(t, func() result {
			return fx.do("POST", level.post, tok, query, "Content-Type", "application/x-www-form-urlencoded")
		})
		gotPost := fx.up.requests()
		postBodies := slices.Clone(fx.up.bodies)
		if get.status != post.status || len(gotGet) != len(gotPost) {
			t.Fatalf("%s %q (token %d): GET %d with %d request(s) upstream, POST %d with %d: %.200s | %.200s",
				level.get, query, which%7, get.status, len(gotGet), post.status, len(gotPost), get.raw, post.raw)
		}
		if len(gotGet) == 0 {
			return
		}
		// The last request is the search (any before it resolve a chain).
		g, p := gotGet[len(gotGet)-1], gotPost[len(gotPost)-1]
		params := p.URL.Query()
		if p.Method == http.MethodPost {
			form, err := url.ParseQuery(postBodies[len(postBodies)-1])
			if err != nil {
				t.Fatalf("%q: the form went upstream unreadable: %q", query, postBodies[len(postBodies)-1])
			}
			for k, v := range form {
				params[k] = append(params[k], v...)
			}
		}
		if !reflect.DeepEqual(orLists(params), orLists(g.URL.Query())) {
			t.Fatalf("%s %q (token %d): GET went with %v, POST with %v", level.get, query, which%7, g.URL.Query(), params)
		}
		if !slices.Equal(entryIDs(get), entryIDs(post)) {
			t.Fatalf("%s %q (token %d): GET answered %v, POST %v", level.get, query, which%7, entryIDs(get), entryIDs(post))
		}
	})
}

// searchLevels are the paths a search is made at: a type, a patient's
// compartment, the system.
var searchLevels = [...]struct{ get, post string }{{"/Observation", "/Observation/_search"},
	{"/Patient/p1/Observation", "/Patient/p1/Observation/_search"}, {"/Patient/p2/Observation", "/Patient/p2/Observation/_search"}, {"/", "/_search"}}

// orLists is a query with each value's comma-separated list sorted: the
// order of an OR list (the references a chain resolves to, in the order
// the server found them) does not change what it matches.
func orLists(q url.Values) url.Values {
	out := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			list := strings.Split(v, ",")
			slices.Sort(list)
			out[k] = append(out[k], strings.Join(list, ","))
		}
	}
	return out
}

// audited runs one request and asserts that it was audited: exactly one
// event, a failure for a refusal (4xx, 5xx), a success otherwise, naming
// the client. A write forwarded is audited before it goes (its event
// saying so) and then with its outcome: two events, the second judged so.
func (f *fixture) audited(t *testing.T, do func() result) result {
	t.Helper()
	f.audit.Reset()
	r := do()
	events := f.audit.Events()
	if len(events) == 2 && strings.HasPrefix(events[0].Reason, "write authorised") && events[0].ClientID == events[1].ClientID {
		events = events[1:]
	}
	if len(events) != 1 {
		t.Fatalf("%d: %d audit events, want 1", r.status, len(events))
	}
	want := audit.Success
	if r.status >= 400 {
		want = audit.Failure
	}
	if e := events[0]; e.Outcome != want || e.ClientID == "" {
		t.Fatalf("%d: audited as %q by %q, want %q", r.status, e.Outcome, e.ClientID, want)
	}
	return r
}
