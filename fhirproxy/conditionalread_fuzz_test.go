package fhirproxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzConditionalReadsAgree: a conditional read (If-None-Match,
// If-Modified-Since; a batch entry's ifNoneMatch) answers as the plain read
// does, or 304 where the record is one the plain read shows and the
// condition holds for it. A record the plain read does not show (another
// patient's, a withheld one, a missing one) is answered exactly as there,
// never 304: a 304 would tell that it exists, and at which version.
func FuzzConditionalReadsAgree(f *testing.F) {
	for _, target := range []string{"Observation/lab-1", "Observation/lab-2", "Observation/psy-1", "Observation/vs-1", "Observation/none",
		"Patient/p1", "Patient/p2", "Observation/lab-1/_history/1", "Observation/lab-2/_history/1"} {
		for _, cond := range []string{`W/"1"`, `"1"`, `W/"2"`, `*`, `W/"0", W/"1"`, "Mon, 02 Nov 2026 10:00:00 GMT", "Tue, 01 Jan 2030 00:00:00 GMT",
			"Sun, 01 Jan 2000 00:00:00 GMT", "x"} {
			for which := range uint8(6) {
				f.Add(target, cond, which)
			}
		}
	}
	fx := newFixture(&testing.T{})
	tokens := append(endToEndTokens(fx), fx.token("system/*.rs", everyLabel())) // the last's answers are not inspected
	f.Fuzz(func(t *testing.T, target, cond string, which uint8) {
		segs := strings.Split(target, "/")
		read := len(segs) == 2 || len(segs) == 4 && segs[2] == "_history" // (a search's entries come in the server's order)
		if !read || !requestTarget(target) || strings.Contains(target, "?") || !validHeaderValue(cond) {
			return
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		plain := fx.do("GET", "/"+target, tok, "")
		etag, modified := plain.header.Get("ETag"), plain.header.Get("Last-Modified")
		// holds: does the condition hold for the record the plain read shows?
		holds := func(header string) bool {
			if header == "If-None-Match" {
				for _, tag := range strings.Split(cond, ",") {
					tag = strings.TrimSpace(tag)
					if tag == "*" || etag != "" && strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/") {
						return true
					}
				}
				return false
			}
			since, err1 := http.ParseTime(cond)
			last, err2 := http.ParseTime(modified)
			return err1 == nil && err2 == nil && !last.After(since)
		}
		for _, header := range []string{"If-None-Match", "If-Modified-Since"} {
			r := fx.do("GET", "/"+target, tok, "", header, cond)
			switch {
			case r.status == http.StatusNotModified && (plain.status != http.StatusOK || !holds(header) || r.raw != ""):
				t.Fatalf("%s with %s: %q (token %d): 304 %q; the plain read %d %.200s", target, header, cond, which%6, r.raw, plain.status, plain.raw)
			case r.status != http.StatusNotModified && (r.status != plain.status || r.raw != plain.raw):
				t.Fatalf("%s with %s: %q (token %d): %d %.200s; the plain read %d %.200s", target, header, cond, which%6, r.status, r.raw, plain.status, plain.raw)
			}
		}
		// In a batch: the entry's ifNoneMatch.
		if strings.Contains(target, "/_history/") {
			return
		}
		e, _ := json.Marshal(map[string]any{"request": map[string]any{"method": "GET", "url": target, "ifNoneMatch": cond}})
		r := fx.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[`+string(e)+`]}`)
		if r.status != http.StatusOK {
			return // a batch this token may not send is refused whole, whatever the entry
		}
		entries, _ := r.body["entry"].([]any)
		if len(entries) != 1 {
			t.Fatalf("%s batched: %.300s", target, r.raw)
		}
		entry := entries[0].(map[string]any)
		status, _ := entry["response"].(map[string]any)["status"].(string)
		switch {
		case strings.HasPrefix(status, "304") && (plain.status != http.StatusOK || !holds("If-None-Match") || entry["resource"] != nil):
			t.Fatalf("%s batched with ifNoneMatch %q (token %d): %s; the plain read %d %.200s", target, cond, which%6, mustJSON(entry), plain.status, plain.raw)
		case !strings.HasPrefix(status, "304") && !strings.HasPrefix(status, "200") && plain.status == http.StatusOK:
			t.Fatalf("%s batched with ifNoneMatch %q (token %d): %s; the plain read 200", target, cond, which%6, mustJSON(entry))
		case strings.HasPrefix(status, "200") && (plain.status != http.StatusOK || mustJSON(entry["resource"]) != mustJSON(plain.body)):
			t.Fatalf("%s batched with ifNoneMatch %q (token %d): %s; the plain read %d %.200s", target, cond, which%6, mustJSON(entry), plain.status, plain.raw)
		}
	})
}

// validHeaderValue reports whether s can be sent as a header value as it
// is (no control characters but tab, no leading or trailing space, which
// the client would trim).
func validHeaderValue(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return s == strings.TrimSpace(s)
}
