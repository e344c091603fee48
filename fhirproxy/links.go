package fhirproxy

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// Links. A FHIR server writes its own base into paging links (Bundle.link),
// Location and Content-Location: addresses a client cannot use (it holds
// no upstream credential, and may not reach the upstream at all) and that
// disclose the upstream. With Proxy.Base set, those on the upstream's base
// are moved onto the proxy's, so a client follows them through the proxy,
// which authorises each as any request (a link is not a permission: one
// edited to name another patient is refused like the search it then is).

// relinker moves URLs from one base onto another.
type relinker struct{ from, to string }

// relinker returns the Proxy's, or nil when Base is not set (like the
// other fields, Base and Upstream are read once, at first use).
func (p *Proxy) relinker() *relinker {
	p.linkOnce.Do(func() {
		if p.Base != "" {
			p.links = &relinker{strings.TrimSuffix(p.Upstream.String(), "/"), strings.TrimSuffix(p.Base, "/")}
		}
	})
	return p.links
}

// move returns u on the proxy's base when it is on the upstream's.
func (rl *relinker) move(u string) (string, bool) {
	rest, ok := strings.CutPrefix(u, rl.from)
	if !ok || rest != "" && rest[0] != '/' && rest[0] != '?' {
		return u, false
	}
	return rl.to + rest, true
}

// headers moves Location and Content-Location.
func (rl *relinker) headers(h http.Header) {
	for _, k := range [...]string{"Location", "Content-Location"} {
		if v := h[k]; len(v) == 1 {
			if moved, ok := rl.move(v[0]); ok {
				h[k] = []string{moved}
			}
		}
	}
}

// member returns a Bundle's top-level link member (its name and value, as
// the Bundle holds them) with the urls on the upstream's base moved, or nil
// when none is. A link member that is not an array of objects is left as it
// is (the strict pass has checked it is JSON).
func (rl *relinker) member(raw []byte) []byte {
	colon := strings.IndexByte(string(raw), ':') // the name is "link", perhaps escaped: no colon in it
	if colon < 0 {
		return nil
	}
	value := raw[colon+1:]
	type edit struct {
		start, end int64
		url        string
	}
	var edits []edit
	s := jsonstrict.NewScanner(value)
	err := readArray(s, func() error {
		return readObject(s, func(name []byte) error {
			if string(name) != "url" || s.Kind() != '"' {
				return s.Skip()
			}
			start := s.Offset()
			v, err := s.String()
			if err != nil {
				return err
			}
			if moved, ok := rl.move(string(v)); ok {
				edits = append(edits, edit{start, s.Offset(), moved})
			}
			return nil
		})
	})
	if err != nil || len(edits) == 0 {
		return nil
	}
	out := append(make([]byte, 0, len(raw)+len(edits)*len(rl.to)), raw[:colon+1]...)
	prev := int64(0)
	for _, e := range edits {
		out = append(out, value[prev:e.start]...)
		q, _ := json.Marshal(e.url)
		out = append(out, q...)
		prev = e.end
	}
	return append(out, value[prev:]...)
}
