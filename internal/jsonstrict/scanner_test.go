package jsonstrict

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// checkStream checks s through a streaming Scanner fed one byte at a time,
// so every refill path is taken.
func checkStream(s string) error {
	sc := NewStreamScanner(iotest.OneByteReader(strings.NewReader(s)), 1<<20)
	sc.fold = true // as Check
	if err := sc.Skip(); err != nil {
		return err
	}
	return sc.End()
}

func TestStreamAgreesWithCheck(t *testing.T) {
	for _, s := range good {
		if err := checkStream(s); err != nil {
			t.Errorf("streamed %q: %v", s, err)
		}
	}
	for _, s := range bad {
		if err := checkStream(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("streamed %q: %v, want ErrInvalid", s, err)
		}
	}
}

// TestPull reads the members a caller wants and skips the rest, from a
// slice and from a one-byte stream, and gets the same answers.
func TestPull(t *testing.T) {
	doc := `{"resourceType":"Bundle","total":2,"entry":[{"resource":{"resourceType":"Observation","id":"a\u0031"}},` +
		`{"resource":{"resourceType":"Patient","id":"p"}}],"link":[]}`
	read := func(sc *Scanner) (string, []string, []string, error) {
		var typ string
		var ids, spans []string
		err := sc.Object(func(name []byte) error {
			switch string(name) {
			case "resourceType":
				v, err := sc.String()
				typ = string(v)
				return err
			case "entry":
				return sc.Array(func() error {
					start := sc.Offset()
					err := sc.Object(func(name []byte) error {
						if string(name) != "resource" {
							return sc.Skip()
						}
						return sc.Object(func(name []byte) error {
							if string(name) != "id" {
								return sc.Skip()
							}
							v, err := sc.String()
							ids = append(ids, string(v))
							return err
						})
					})
					spans = append(spans, string(sc.Bytes(start, sc.Offset())))
					sc.Release(sc.Offset())
					return err
				})
			}
			return sc.Skip()
		})
		if err == nil {
			err = sc.End()
		}
		return typ, ids, spans, err
	}
	for name, sc := range map[string]*Scanner{
		"slice":  NewScanner([]byte(doc)),
		"stream": NewStreamScanner(iotest.OneByteReader(strings.NewReader(doc)), 256),
	} {
		typ, ids, spans, err := read(sc)
		if err != nil || typ != "Bundle" || fmt.Sprint(ids) != "[a1 p]" || len(spans) != 2 ||
			spans[1] != `{"resource":{"resourceType":"Patient","id":"p"}}` {
			t.Errorf("%s: %q %q %q %v", name, typ, ids, spans, err)
		}
	}
	// Type errors are refusals, not guesses.
	sc := NewScanner([]byte(`{"resourceType":1}`))
	err := sc.Object(func([]byte) error { _, err := sc.String(); return err })
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("a number read as a string: %v", err)
	}
	// A callback that does not read its value cannot make the scan pass.
	sc = NewScanner([]byte(`{"a":{"b":1}}`))
	if err := sc.Object(func([]byte) error { return nil }); err == nil {
		t.Error("an unread member value passed")
	}
}

// TestStreamWindow shows a streaming Scanner holds about one released
// element at a time, and refuses an element larger than its limit.
func TestStreamWindow(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString("[")
	for i := range 2000 {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `{"n":%d,"pad":%q}`, i, strings.Repeat("x", 1000))
	}
	doc.WriteString("]")
	sc := NewStreamScanner(bytes.NewReader(doc.Bytes()), 128<<10)
	most := 0
	err := sc.Array(func() error {
		err := sc.Skip()
		sc.Release(sc.Offset())
		most = max(most, cap(sc.b))
		return err
	})
	if err != nil {
		t.Fatalf("%d bytes through a 128 KiB window: %v", doc.Len(), err)
	}
	if most > 200<<10 {
		t.Errorf("window grew to %d bytes for 1 KB elements", most)
	}
	// Without Release the same input overflows the window.
	sc = NewStreamScanner(bytes.NewReader(doc.Bytes()), 128<<10)
	if err := sc.Skip(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("unreleased 2 MB through a 128 KiB window: %v", err)
	}
}

// TestCaseFoldedTwins: Check, whose callers decode with encoding/json,
// refuses names equal under case folding; the Scanner matches exactly.
func TestCaseFoldedTwins(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range 20 {
		fmt.Fprintf(&many, `"k%d":1,`, i)
	}
	many.WriteString(`"K19":2}`)
	for _, s := range []string{`{"aud":"x","AUD":"y"}`, `{"sub":1,"Sub":2}`, "{\"k\":1,\"\u212a\":2}", `{"ß":1,"ẞ":2}`, many.String()} {
		if err := Check([]byte(s)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want a duplicate", s, err)
		}
		sc := NewScanner([]byte(s))
		if err := sc.Skip(); err != nil {
			t.Errorf("Scanner refused %q: %v", s, err)
		}
		// A folding scanner refuses them too, in an object it reads as in
		// one it skips.
		read := NewFoldingScanner([]byte(s))
		if err := read.Object(func([]byte) error { return read.Skip() }); !errors.Is(err, ErrInvalid) {
			t.Errorf("folding Object(%q) = %v, want a duplicate", s, err)
		}
		nested := NewFoldingScanner([]byte(`{"x":` + s + `}`))
		if err := nested.Object(func([]byte) error { return nested.Skip() }); !errors.Is(err, ErrInvalid) {
			t.Errorf("folding Skip of %q = %v, want a duplicate", s, err)
		}
	}
	if err := Check([]byte(`{"aud":"x","aux":"y","a":1}`)); err != nil {
		t.Errorf("distinct names: %v", err)
	}
}

// TestStreamDuplicateAfterRelease: names of the open objects outlive the
// window moving over them, so a twin after a long released array is caught.
func TestStreamDuplicateAfterRelease(t *testing.T) {
	var doc strings.Builder
	doc.WriteString(`{"resourceType":"Bundle","entry":[`)
	for i := range 500 {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `{"pad":%q}`, strings.Repeat("y", 1000))
	}
	for _, tail := range []string{`],"resourceType":"Other"}`, `],"entry":[]}`, `],"ok":1}`} {
		sc := NewStreamScanner(strings.NewReader(doc.String()+tail), 64<<10)
		err := sc.Object(func(name []byte) error {
			if string(name) != "entry" {
				return sc.Skip()
			}
			return sc.Array(func() error {
				err := sc.Skip()
				sc.Release(sc.Offset())
				return err
			})
		})
		if tail == `],"ok":1}` {
			if err != nil {
				t.Errorf("%s: %v", tail, err)
			}
		} else if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "duplicate") {
			t.Errorf("%s: %v, want a duplicate", tail, err)
		}
	}
}

// walkReleasing reads s through a small window one byte at a time,
// releasing after every array element at any depth: the most the window
// can move under open objects.
func walkReleasing(s string) error {
	sc := NewStreamScanner(iotest.OneByteReader(strings.NewReader(s)), 1<<20)
	sc.fold = true
	var value func() error
	value = func() error {
		switch sc.Kind() {
		case '{':
			return sc.Object(func([]byte) error { return value() })
		case '[':
			return sc.Array(func() error {
				err := value()
				sc.Release(sc.Offset())
				return err
			})
		}
		return sc.Skip()
	}
	if err := value(); err != nil {
		return err
	}
	return sc.End()
}

// TestSkipPlain checks the eight-bytes-at-a-time scan against the plain
// table byte by byte: every non-plain byte at every position of a word,
// behind plain bytes on either side of every threshold the masks use, and
// random text.
func TestSkipPlain(t *testing.T) {
	naive := func(b []byte, i int) int {
		for i < len(b) && plain[b[i]] {
			i++
		}
		return i
	}
	fillers := []byte{'a', ' ', '!', '#', '[', ']', 0x7f, 0x21, '"' + 1, '\\' + 1, '\\' - 1}
	var stops []byte
	for c := range 256 {
		if !plain[c] {
			stops = append(stops, byte(c))
		}
	}
	for n := range 40 {
		for _, fill := range fillers {
			b := bytes.Repeat([]byte{fill}, n)
			if got, want := skipPlain(b, 0), naive(b, 0); got != want {
				t.Fatalf("%q: %d, want %d", b, got, want)
			}
			for p := range n {
				for _, stop := range stops {
					b[p] = stop
					for from := 0; from <= p; from += 3 {
						if got, want := skipPlain(b, from), naive(b, from); got != want {
							t.Fatalf("%q from %d: %d, want %d", b, from, got, want)
						}
					}
					b[p] = fill
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64)
	for range 100000 {
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(4) != 0 {
				b[i] = byte(0x20 + rng.IntN(0x60)) // mostly plain, so runs get long
			}
		}
		from := rng.IntN(len(b))
		if got, want := skipPlain(b, from), naive(b, from); got != want {
			t.Fatalf("%q from %d: %d, want %d", b, from, got, want)
		}
	}
}
