package fhirproxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// streamOut filters body through a streamer reading r; assumed is the
// streamer's (the answer of a search: entries may come first).
func streamOut(a *access, r io.Reader, limit int, assumed ...bool) ([]byte, *streamer, error) {
	var out bytes.Buffer
	st := newStreamer(jsonstrict.NewStreamScanner(r, limit), bufio.NewWriter(&out), a, len(assumed) > 0 && assumed[0], "")
	err := st.run()
	return out.Bytes(), st, err
}

func decoded(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %.200q: %v", b, err)
	}
	return v
}

// typeFirst moves a Bundle's resourceType (last of the sorted members
// encoding/json writes for a map) to the front, where servers put it.
func typeFirst(b []byte) []byte {
	return append([]byte(`{"resourceType":"Bundle",`), bytes.Replace(b[1:], []byte(`"resourceType":"Bundle",`), nil, 1)...)
}

// TestStreamAgreesWithWholeBody: a streamed Bundle says what the whole-body
// inspection says (member order aside), with every refill path taken.
func TestStreamAgreesWithWholeBody(t *testing.T) {
	label := `{"code":"HTEST","system":"http://terminology.hl7.org/CodeSystem/v3-ActReason"}`
	labelled := bytes.Replace(bundle(50), []byte(label), []byte(label+`,{"code":"R","system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}`), 1)
	for name, body := range map[string][]byte{
		"filtered": typeFirst(bundle(300)), "labelled": typeFirst(labelled), "all kept": typeFirst(bundle(6)), "empty": []byte(`{"resourceType":"Bundle","type":"searchset","total":0}`),
		"none kept": []byte(`{"resourceType":"Bundle","meta":{"lastUpdated":"2026-01-01"},"entry":[{"resource":{"resourceType":"Patient","id":"p2"}}],"total":1,"link":[]}`),
		// Members in name order, entries first: a search's answer only.
		"entries first":          bundle(300),
		"entries first labelled": labelled,
	} {
		a := testAccess("patient/Observation.rs patient/Patient.rs")
		whole, _, ref := a.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, body)
		if ref != nil {
			t.Fatalf("%s: %v", name, ref)
		}
		_, entryFirst := bundleHead(body)
		for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body)), iotest.HalfReader(bytes.NewReader(body))} {
			out, _, err := streamOut(a, r, 1<<20, entryFirst)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(decoded(t, out), decoded(t, whole)) {
				t.Fatalf("%s: streamed\n%.300s\nwhole\n%.300s", name, out, whole)
			}
			if jsonstrict.Check(out) != nil {
				t.Fatalf("%s: streamed output is not strict JSON", name)
			}
		}
	}
}

// TestStreamRefuses: a stream that turns bad stops with an error after the
// entries judged so far; nothing unjudged is written.
func TestStreamRefuses(t *testing.T) {
	a := testAccess("patient/Observation.rs")
	good := `{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}}`
	for name, body := range map[string]string{
		"truncated":        `{"resourceType":"Bundle","entry":[` + good + `,{"resource":{"resourceType":"Observation","id":"b","subject":{"refer`,
		"duplicate member": `{"resourceType":"Bundle","entry":[` + good + `,{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"Patient/p1"},"subject":{"reference":"Patient/p2"}}}]}`,
		"entry twin":       `{"resourceType":"Bundle","entry":[` + good + `],"entry":[{"resource":{"resourceType":"Observation","id":"c","subject":{"reference":"Patient/p2"}}}]}`,
		"trailing data":    `{"resourceType":"Bundle","entry":[` + good + `]} {}`,
		"entry first":      `{"entry":[` + good + `],"resourceType":"Bundle"}`,
	} {
		out, _, err := streamOut(a, strings.NewReader(body), 1<<20)
		if err == nil {
			t.Errorf("%s: streamed without error: %s", name, out)
		}
		if bytes.Contains(out, []byte(`"id":"b"`)) || bytes.Contains(out, []byte(`"id":"c"`)) || bytes.Contains(out, []byte("Patient/p2")) {
			t.Errorf("%s: an unjudged entry went out: %s", name, out)
		}
	}
	// A search's answer written entries first must turn out a Bundle; the
	// entries judged before that went out, nothing else.
	for name, body := range map[string]string{
		"not a Bundle":     `{"entry":[` + good + `],"resourceType":"Observation","id":"b"}`,
		"no resourceType":  `{"entry":[` + good + `],"total":1}`,
		"type twice":       `{"entry":[` + good + `],"resourceType":"Bundle","resourceType":"Bundle"}`,
		"other entry late": `{"entry":[` + good + `],"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"c","subject":{"reference":"Patient/p2"}}}]}`,
	} {
		out, _, err := streamOut(a, strings.NewReader(body), 1<<20, true)
		if err == nil {
			t.Errorf("%s: streamed without error: %s", name, out)
		}
		if bytes.Contains(out, []byte(`"id":"c"`)) || bytes.Contains(out, []byte("Patient/p2")) || bytes.Contains(out, []byte(`"id":"b"`)) {
			t.Errorf("%s: an unjudged entry went out: %s", name, out)
		}
	}
	// An entry larger than the proxy holds is refused, not buffered.
	big := `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"},"text":"` + strings.Repeat("x", 256<<10) + `"}}]}`
	if _, _, err := streamOut(a, strings.NewReader(big), 64<<10); !errors.Is(err, jsonstrict.ErrTooLarge) {
		t.Errorf("an entry over the limit: %v", err)
	}
	for head, want := range map[string][2]bool{
		`{"resourceType":"Bundle","entry":[`:   {true, false},
		`{"id":"b","entry":[{"resource":`:      {false, true},
		`{"entry":[],"resourceType":"Bundle"}`: {false, true},
		`{"resourceType":"Observation"`:        {false, false},
		`{"id":"x","text":"unfinish`:           {false, false},
	} {
		if b, e := bundleHead([]byte(head)); [2]bool{b, e} != want {
			t.Errorf("bundleHead(%s) = %v, %v; want %v", head, b, e, want)
		}
	}
}

// bundleReader produces a searchset of n ~1 KB entries without ever
// holding it: the stream is made as it is read.
type bundleReader struct {
	n, i  int
	buf   []byte // made, not yet read
	store []byte // buf's array, reused
	done  bool
	// sorted writes the members in name order ("entry" first), as some
	// servers do.
	sorted bool
}

var padTail = strings.Repeat("z", 900) + `"}}}`

func (g *bundleReader) Read(p []byte) (int, error) {
	if len(g.buf) == 0 {
		if g.done {
			return 0, io.EOF
		}
		g.buf = g.next(g.store[:0])
		g.store = g.buf
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// next appends the next piece of the Bundle.
func (g *bundleReader) next(b []byte) []byte {
	defer func() { g.i++ }()
	switch {
	case g.i == 0 && g.sorted:
		return append(b, `{"entry":[`...)
	case g.i == 0:
		return append(strconv.AppendInt(append(b, `{"resourceType":"Bundle","type":"searchset","total":`...), int64(g.n), 10), `,"entry":[`...)
	case g.i > g.n && g.sorted:
		g.done = true
		return append(strconv.AppendInt(append(b, `],"resourceType":"Bundle","total":`...), int64(g.n), 10), `,"type":"searchset"}`...)
	case g.i > g.n:
		g.done = true
		return append(b, `]}`...)
	}
	if g.i > 1 {
		b = append(b, ',')
	}
	p := "p1"
	if g.i%7 == 0 {
		p = "p2"
	}
	b = strconv.AppendInt(append(b, `{"fullUrl":"https://x/Observation/o`...), int64(g.i), 10)
	b = strconv.AppendInt(append(b, `","resource":{"resourceType":"Observation","id":"o`...), int64(g.i), 10)
	b = append(b, `","status":"final","subject":{"reference":"Patient/`...)
	return append(append(append(b, p...), `"},"code":{"text":"`...), padTail...)
}

// TestStreamMemoryIsBounded filters a 64 MB Bundle allocating a small
// fraction of it in all: the body is never held whole.
func TestStreamMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 64 MB")
	}
	a := testAccess("patient/Observation.rs")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, sorted := range []bool{false, true} { // resourceType first, and entries first
		runtime.GC()
		runtime.ReadMemStats(&before)
		cw := &countingWriter{}
		st := newStreamer(jsonstrict.NewStreamScanner(&bundleReader{n: 64 << 10, sorted: sorted}, 1<<20), bufio.NewWriter(cw), a, sorted, "")
		if err := st.run(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("entries first %v: streamed %d entries, wrote %d MB, allocated %.1f MB in all", sorted, st.sent, cw.n>>20, float64(allocated)/(1<<20))
		if st.sent != 64<<10-(64<<10)/7 || !st.removed {
			t.Errorf("sent %d entries", st.sent)
		}
		if allocated > 16<<20 {
			t.Errorf("allocated %d bytes for a 64 MB stream", allocated)
		}
	}
}

type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// BenchmarkInspectStream filters a 4 MB searchset as it streams, beside
// the whole-body inspection of the same bytes.
func BenchmarkInspectStream(b *testing.B) {
	var body bytes.Buffer
	_, _ = io.Copy(&body, &bundleReader{n: 4 << 10})
	a := testAccess("patient/Observation.rs")
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(body.Len()))
		b.ReportAllocs()
		for b.Loop() {
			st := newStreamer(jsonstrict.NewStreamScanner(bytes.NewReader(body.Bytes()), 1<<20), bufio.NewWriter(io.Discard), a, false, "")
			if err := st.run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(int64(body.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ref := a.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, body.Bytes()); ref != nil {
				b.Fatal(ref)
			}
		}
	})
}

// TestTotalCountsMatches: a search's total goes out only when it counts no
// more than the matches the page holds. Included resources and outcomes
// are not matches: counted, they would let a total through that also
// counts a match the page lacks (an upstream that cut the page short and
// wrote no next link), which may be one the clearance withholds. Whole and
// streamed alike.
func TestTotalCountsMatches(t *testing.T) {
	a := testAccess("user/*.rs")
	page := func(total int) []byte {
		return fmt.Appendf(nil, `{"resourceType":"Bundle","type":"searchset","total":%d,"entry":[`+
			`{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}},"search":{"mode":"match"}},`+
			`{"resource":{"resourceType":"Practitioner","id":"dr"},"search":{"mode":"include"}},`+
			`{"resource":{"resourceType":"OperationOutcome","issue":[]},"search":{"mode":"outcome"}}]}`, total)
	}
	for total, want := range map[int]bool{1: true, 2: false, 3: false} {
		whole, _, ref := a.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, page(total))
		streamed, _, err := streamOut(a, bytes.NewReader(page(total)), 1<<20)
		if ref != nil || err != nil {
			t.Fatalf("total %d: %v %v", total, ref, err)
		}
		for name, out := range map[string][]byte{"whole": whole, "streamed": streamed} {
			doc := decoded(t, out).(map[string]any)
			entries, _ := doc["entry"].([]any)
			if _, kept := doc["total"]; kept != want || len(entries) != 3 {
				t.Errorf("%s, total %d: kept %v, want %v (%d entries)", name, total, kept, want, len(entries))
			}
		}
	}
}

// TestProvenanceKeptWithItsRecords: a patient app's search keeps a
// Provenance only with the records it is about, kept in the same Bundle
// before it, as servers write a _revinclude (a shared record the Bundle
// keeps is not the patient's, and one about it goes nowhere). Whole and
// streamed alike: the inspection remembers what it kept when the search
// may bring Provenances, so one before its record is left out, never let
// through unjudged.
func TestProvenanceKeptWithItsRecords(t *testing.T) {
	prov := func(id, target string) string {
		return `{"resource":{"resourceType":"Provenance","id":"` + id + `","target":[{"reference":"` + target + `"}]},"search":{"mode":"include"}}`
	}
	obs := func(id, patient string) string {
		return `{"resource":{"resourceType":"Observation","id":"` + id + `","subject":{"reference":"Patient/` + patient + `"}},"search":{"mode":"match"}}`
	}
	body := []byte(`{"resourceType":"Bundle","type":"searchset","entry":[` + prov("before", "Observation/o1") + `,` + obs("o1", "p1") + `,` +
		obs("o2", "p2") + `,` + prov("after", "Observation/o1") + `,` + prov("theirs", "Observation/o2") + `,` +
		prov("self", "Provenance/after") + `,{"resource":{"resourceType":"Practitioner","id":"dr"},"search":{"mode":"include"}},` +
		prov("shared", "Practitioner/dr") + `]}`)
	ids := func(b []byte) []string {
		var v struct {
			Entry []struct{ Resource struct{ ID string } }
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		var out []string
		for _, e := range v.Entry {
			out = append(out, e.Resource.ID)
		}
		return out
	}
	a := testAccess("launch/patient patient/*.rs")
	for _, provenances := range []bool{true, false} { // false: a search that brings none, where one is left out
		a.provenances = provenances
		want := []string{"o1", "after", "dr"}
		if !provenances {
			want = []string{"o1", "dr"}
		}
		whole, _, ref := a.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, body)
		if got := ids(whole); ref != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("whole, Provenances asked for %v: %v %v", provenances, got, ref)
		}
		streamed, _, err := streamOut(a, bytes.NewReader(body), 64)
		if got := ids(streamed); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("streamed, Provenances asked for %v: %v %v", provenances, got, err)
		}
	}
}
