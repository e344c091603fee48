package fhirproxy_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzOperationForms: an operation of the proxy's table asked with its
// parameters in the query is the same operation POSTed with them in a
// Parameters body: the proxy allows or refuses both alike, and sends both
// upstream with the same parameters, as the server reads them. A check
// made on one form and not the other would break it. (Both refused is
// alike, whatever each status says.)
func FuzzOperationForms(f *testing.F) {
	for _, s := range []string{
		"ValueSet/$expand?url=http://example.org/vs/colours&filter=re&count=10",
		"ValueSet/colours/$expand?displayLanguage=en",
		"ValueSet/$expand?url=http://example.org/vs/secret",
		"ValueSet/$expand?filter=re", "ValueSet/$expand?url=a&url=b", "ValueSet/colours/$expand?url=http://example.org/vs/secret",
		"ValueSet/$expand?url=http://example.org/vs/colours&designation=a&designation=b",
		"ValueSet/$validate-code?url=http://example.org/vs/colours&system=http://example.org/cs&code=red",
		"CodeSystem/$lookup?system=http://example.org/cs&code=red&property=display&property=designation",
		"CodeSystem/cs/$subsumes?codeA=red&codeB=crimson", "CodeSystem/cs/$lookup?code=red",
		"ConceptMap/$translate?url=http://example.org/cm&system=http://example.org/cs&code=red",
		"ValueSet/$expand?url=http://example.org/vs/colours&context=Observation.code",
		"ValueSet/$expand?url=http://example.org/vs/colours&code=", "ValueSet/$expand?url=&filter=x",
		"ValueSet/$expand?url=http://example.org/vs/colours&filter=a%26b", "ValueSet/$expand?url=http://example.org/vs/colours&filter=a,b",
		"ValueSet/$expand?url=http://example.org/vs/colours&count=x", "ValueSet/$expand?url=http://example.org/vs/colours&_pretty=true",
		"ValueSet/nope/$expand", "ValueSet/$expand?url=http://nowhere", "Observation/$lastn?category=laboratory&max=2",
		"Observation/$lastn?patient=p2", "DocumentReference/$docref?patient=p1", "ValueSet/$invalidate?url=x",
		"Patient/p1/$everything", "ValueSet/$expand?url=http://example.org/vs/colours&coding=x",
	} {
		for which := range uint8(5) {
			f.Add(s, which)
		}
	}
	fx := newFixture(&testing.T{})
	terminology(fx)
	tokens := []string{
		fx.token("user/ValueSet.rs user/CodeSystem.rs user/ConceptMap.rs", everyLabel()),
		fx.token("user/ValueSet.rs user/CodeSystem.rs", nil), // short of the labels: the value set is judged first
		fx.token("launch/patient patient/ValueSet.rs patient/CodeSystem.r patient/Observation.rs", nil),
		fx.token("system/ConceptMap.rs system/ValueSet.r", everyLabel()),
		fx.token("user/ValueSet.rs?url=http://example.org/vs/colours user/Observation.rs", nil),
	}
	f.Fuzz(func(t *testing.T, target string, which uint8) {
		path, query, _ := strings.Cut(target, "?")
		values, err := url.ParseQuery(query)
		if !requestTarget(target) || err != nil || !strings.Contains(path, "$") || values.Has("_format") {
			return // _format is the query's alone: a body is JSON
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		// The body: the query's parameters, in its order, each a valueString.
		var params []map[string]string
		for part := range strings.SplitSeq(query, "&") {
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			k, _ = url.QueryUnescape(k)
			v, _ = url.QueryUnescape(v)
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return // JSON carries no invalid UTF-8 (it would be U+FFFD)
			}
			params = append(params, map[string]string{"name": k, "valueString": v})
		}
		body, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
		fx.up.reset()
		get := fx.audited(t, func() result { return fx.do("GET", "/"+target, tok, "") })
		gotGet := fx.up.requests()
		fx.up.reset()
		post := fx.audited(t, func() result {
			return fx.do("POST", "/"+path, tok, string(body), "Content-Type", "application/fhir+json")
		})
		gotPost, postBodies := fx.up.requests(), slices.Clone(fx.up.bodies)
		if get.status >= 400 && post.status >= 400 && len(gotGet)+len(gotPost) == 0 {
			return // both refused: a query is parsed before the token is read, a body after, so the first check to fail may differ
		}
		if get.status != post.status || len(gotGet) != len(gotPost) {
			t.Fatalf("%q (token %d): GET %d with %d request(s) upstream, POST %d with %d: %.200s | %.200s",
				target, which%5, get.status, len(gotGet), post.status, len(gotPost), get.raw, post.raw)
		}
		if len(gotGet) == 0 {
			return
		}
		// What judged the subject first went alike; the last request is the
		// operation.
		for i := range len(gotGet) - 1 {
			if g, p := gotGet[i].URL.String(), gotPost[i].URL.String(); g != p {
				t.Fatalf("%q (token %d): GET judged with %s, POST with %s", target, which%5, g, p)
			}
		}
		g, p := gotGet[len(gotGet)-1], gotPost[len(gotPost)-1]
		var sentGet, sentPost []string
		for k, vs := range g.URL.Query() {
			for _, v := range vs {
				sentGet = append(sentGet, k+"="+v)
			}
		}
		for k, vs := range p.URL.Query() {
			for _, v := range vs {
				sentPost = append(sentPost, k+"="+v)
			}
		}
		if p.Method == "POST" {
			var sent struct {
				Parameter []map[string]json.RawMessage
			}
			if err := json.Unmarshal([]byte(postBodies[len(postBodies)-1]), &sent); err != nil {
				t.Fatalf("%q: the body went upstream unreadable: %q", target, postBodies[len(postBodies)-1])
			}
			for _, prm := range sent.Parameter {
				var name, value string
				_ = json.Unmarshal(prm["name"], &name)
				_ = json.Unmarshal(prm["valueString"], &value)
				sentPost = append(sentPost, name+"="+value)
			}
		}
		slices.Sort(sentGet)
		slices.Sort(sentPost)
		if g.URL.Path != p.URL.Path || !slices.Equal(sentGet, sentPost) {
			t.Fatalf("%q (token %d): GET went as %s %q, POST as %s %q", target, which%5, g.URL.Path, sentGet, p.URL.Path, sentPost)
		}
	})
}
