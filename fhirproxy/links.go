package fhirproxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
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
type relinker struct {
	from, to string
	p        *Proxy // signs page links
}

// relinker returns the Proxy's, or nil when Base is not set (like the
// other fields, Base and Upstream are read once, at first use).
func (p *Proxy) relinker() *relinker {
	p.linkOnce.Do(func() {
		if p.Base != "" {
			p.links = &relinker{strings.TrimSuffix(p.Upstream.String(), "/"), strings.TrimSuffix(p.Base, "/"), p}
		}
	})
	return p.links
}

// move returns u on the proxy's base when it is on the upstream's.
func (rl *relinker) move(u string) (string, bool) {
	rest, ok := rl.below(u)
	if !ok {
		return u, false
	}
	return rl.to + rest, true
}

// below returns what follows the upstream's base in u, if u is on it.
func (rl *relinker) below(u string) (string, bool) { return below(rl.from, u) }

// below returns what follows base (no trailing slash) in u, if u is on
// it: nothing, or a path or query after it (not http://up.example when
// base is http://up, nor http://up@elsewhere).
func below(base, u string) (string, bool) {
	rest, ok := strings.CutPrefix(u, base)
	if !ok || rest != "" && rest[0] != '/' && rest[0] != '?' {
		return "", false
	}
	return rest, true
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

// member returns a Bundle's top-level link member (its name and value, as the
// Bundle holds them) with the urls on the upstream's base moved, page links
// signed for a and the type searched (typ, "" for every type), or nil when
// none is. A link member that is not an array of objects is left as it is (the
// strict pass has checked it is JSON).
func (rl *relinker) member(raw []byte, a *access, typ string) []byte {
	colon := bytes.IndexByte(raw, ':') // the name is "link", perhaps escaped: no colon in it
	if colon < 0 {
		return nil
	}
	value := raw[colon+1:]
	type edit struct {
		start, end int64
		url        string
	}
	var edits []edit
	var who *pageHolder // whose page links these are, made at the first
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
			if rest, ok := rl.below(string(v)); ok {
				moved := rl.to + rest
				if pageLink(rest) {
					if who == nil {
						h := holder(a)
						who = &h
					}
					moved = rl.to + "?" + pageParam + "=" + rl.p.signPage(pageRef{pageHolder: *who,
						Type: typ, Upstream: rest, Expires: time.Now().Add(pageTTL).Unix(), Held: a.recheck, Everything: a.everything, Provenances: a.provenances})
				}
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

// Page links. Some servers page with a token at their base
// ([base]?_getpages=…, as HAPI does) rather than on the search's own URL;
// following such a link is no request the proxy can authorise from its parts
// (it would be a search of every type). With Base set, the proxy signs such a
// link (HMAC-SHA256 with Proxy.PageKey) together with what it continues: the
// client, the grant, the scopes, the patient, the type searched, and an
// expiry. Following it, the proxy checks the signature, the expiry and that
// the token carries the same client, grant, scopes and patient, authorises a
// search of that type as it would the first page, forwards the upstream's own
// URL as it was, and inspects the page like the search.

const (
	pageParam = "_page"
	pageTTL   = time.Hour
)

// pageRef is what a signed page link carries: whose it is, and the page.
type pageRef struct {
	pageHolder
	Type     string // "" is a search of every type
	Upstream string // below the upstream's base: "?_getpages=…"
	Expires  int64  // Unix seconds
	// Held: the search's every entry of the constrained type was held to
	// the constraint by the proxy (access.recheck), and so is the page's.
	// A page carries no parameters, so without it a page of a search that
	// repeated a constraint's parameter, or of $docref, would pass the
	// server's matches unchecked.
	Held bool `json:",omitempty"`
	// Everything is the patient whose $everything the page continues
	// (access.everything): the page is authorised and judged as that
	// operation, not as a search of Patient, which a token granted
	// $everything of some types need not be allowed, and which would judge
	// the page's other types as no $everything does.
	Everything string `json:",omitempty"`
	// Provenances: the search brought the Provenances of its matches
	// (access.provenances), which a page's are judged by as the first
	// page's were; without it, each was left out.
	Provenances bool `json:",omitempty"`
}

// pageHolder is who may follow a page link: the token's client, grant,
// scopes and patient (ids and scopes as audit.Ref, which keeps them out of
// URLs).
type pageHolder struct{ Client, Grant, Scope, Patient string }

func holder(a *access) pageHolder {
	return pageHolder{a.tok.ClientID, audit.Ref(a.tok.GrantID), audit.Ref(a.tok.Scope), a.patient}
}

// pageLink reports whether a link below the upstream's base is at the base
// itself: a page token, not a search the proxy could authorise again.
func pageLink(rest string) bool {
	return strings.HasPrefix(rest, "?") || strings.HasPrefix(rest, "/?")
}

// followPage turns a request for a signed page link ([Base]?_page=…) into
// the search it continues, for the client, grant, scopes and patient it was
// signed for only, to be authorised as that search and forwarded as the upstream
// wrote it. Any other request is left as it is.
func (p *Proxy) followPage(in *Interaction, a *access) *refusal {
	if in.Kind != SearchSystem || len(in.Params) != 1 || in.Params[0].Name != pageParam {
		return nil
	}
	pg, ok := p.openPage(in.Params[0].Value, time.Now())
	// The same scopes too: a page continues a search authorised (and
	// constrained) for them, and is forwarded as it is.
	if !ok || pg.pageHolder != holder(a) {
		return refuse(http.StatusBadRequest, "invalid", "the page link is not valid for this token (or has expired)")
	}
	in.Kind, in.Type, in.Params, in.pageURL, in.pageHeld = SearchType, pg.Type, nil, pg.Upstream, pg.Held
	a.provenances = pg.Provenances
	switch {
	case pg.Everything != "":
		in.Kind, in.ID, in.Operation = Operation, pg.Everything, "$everything"
	case pg.Type == "":
		in.Kind = SearchSystem
	}
	return nil
}

func (p *Proxy) pageKey() []byte {
	p.pageOnce.Do(func() {
		if p.PageKey != nil {
			p.pageSecret = p.PageKey
			return
		}
		p.pageSecret = make([]byte, 32)
		_, _ = rand.Read(p.pageSecret)
	})
	return p.pageSecret
}

func (p *Proxy) signPage(ref pageRef) string {
	payload, _ := json.Marshal(ref)
	mac := hmac.New(sha256.New, p.pageKey())
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// openPage returns the page a signed link names, if the signature holds
// and it has not expired.
func (p *Proxy) openPage(token string, now time.Time) (pageRef, bool) {
	var ref pageRef
	enc, sig, ok := strings.Cut(token, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(enc)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err1 != nil || err2 != nil {
		return ref, false
	}
	mac := hmac.New(sha256.New, p.pageKey())
	mac.Write(payload)
	if !hmac.Equal(got, mac.Sum(nil)) || jsonstrict.Check(payload) != nil || json.Unmarshal(payload, &ref) != nil ||
		now.Unix() > ref.Expires || !pageLink(ref.Upstream) {
		return pageRef{}, false
	}
	return ref, true
}

// nextURL returns the url of a Bundle's next link, given the Bundle's link
// member ("link":[…]), and whether it has one (a member that does not read
// as links has none; a next link may lack its url).
func nextURL(member []byte) (string, bool) {
	colon := bytes.IndexByte(member, ':')
	if colon < 0 || !bytes.Contains(member, []byte("next")) && bytes.IndexByte(member, '\\') < 0 {
		return "", false // the word is not there, even escaped: no scan
	}
	var (
		next  string
		found bool
	)
	s := jsonstrict.NewScanner(member[colon+1:])
	err := readArray(s, func() error {
		var rel, u []byte
		err := readObject(s, func(name []byte) error {
			var err error
			switch {
			case s.Kind() != '"':
				return s.Skip()
			case string(name) == "relation":
				rel, err = s.String()
			case string(name) == "url":
				u, err = s.String()
			default:
				return s.Skip()
			}
			return err
		})
		if string(rel) == "next" && !found {
			next, found = string(u), true
		}
		return err
	})
	if err != nil {
		return "", false
	}
	return next, found
}

// nextLink reports whether a Bundle's link member ("link":[…]) has a link
// whose relation is next. A member that does not read as links has none.
func nextLink(member []byte) bool {
	_, found := nextURL(member)
	return found
}
