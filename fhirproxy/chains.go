package fhirproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/scopes"
)

// chainLimit is how many records a chain's criteria may match, as the
// proxy resolves it; more, and the search must be narrowed.
const chainLimit = 100

// chainTargets are the reference parameters whose name says the type a
// chain through them reaches; any other needs a type modifier
// (subject:Patient.name).
var chainTargets = map[string]string{
	"patient": "Patient", "encounter": "Encounter", "organization": "Organization", "location": "Location",
	"practitioner": "Practitioner", "device": "Device", "medication": "Medication", "specimen": "Specimen",
}

// simpleChain reports whether a parameter is a chain of one link
// (patient.identifier, subject:Patient.name), the only kind the proxy
// resolves; longer chains, reverse chains and filters stay refused when
// labels are judged.
func simpleChain(name string) bool {
	if strings.HasPrefix(name, "_") || strings.Count(name, ".") != 1 {
		return false
	}
	ref, _, _ := strings.Cut(name, ".")
	return ref != "" && strings.Count(ref, ":") <= 1
}

// chainTarget splits a chain of one link (simpleChain) into the reference
// parameter, the type the chain reaches (named by a type modifier, or by
// the parameter: chainTargets; "" when neither names a known type) and the
// target's parameter: subject:Patient.name is subject, Patient, name.
func chainTarget(name string) (param, target, rest string) {
	ref, rest, _ := strings.Cut(name, ".")
	param, target, _ = strings.Cut(ref, ":")
	if target == "" {
		target = chainTargets[param]
	}
	if !knownType(target) {
		target = ""
	}
	return param, target, rest
}

// resolveChains resolves, with labels judged, each chain of a search into
// the references it reaches: the proxy searches the target type itself
// with the chain's criteria, keeps the records the access may see, and
// forwards the search by those references instead (patient.identifier=X
// becomes patient=Patient/a,Patient/b). A record the clearance withholds
// then matches no more than one that does not exist, where a chain sent
// upstream would have told it exists. Criteria matching more than
// chainLimit records are refused, and a chain that reaches none is sent
// as a reference to a random id, which matches nothing.
func (p *Proxy) resolveChains(ctx context.Context, in *Interaction, a *access) *refusal {
	if !in.chained {
		return nil
	}
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	// Counted before any is resolved: each costs the upstream up to
	// chainPages searches, and 64 parameters would make one request 640.
	n := 0
	for _, prm := range in.Params {
		if simpleChain(prm.Name) {
			n++
		}
	}
	if n > p.Limits.chains() {
		return refuse(http.StatusBadRequest, "too-costly", "at most "+strconv.Itoa(p.Limits.chains())+
			" chained parameters a search: the proxy resolves each with searches of its own")
	}
	for i := range in.Params {
		prm := &in.Params[i]
		if !simpleChain(prm.Name) {
			continue
		}
		param, target, rest := chainTarget(prm.Name)
		if ref := chainCriteria(prm.Name); ref != nil { // whatever the path here (a conditional write's criteria too)
			return ref
		}
		switch {
		case target == "":
			return forbidden("name the type the chain reaches, as in " + param + ":Patient." + rest)
		case !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: target, Perms: scopes.Search}):
			// Allows is false too for a type searched only under a query
			// constraint, which the proxy's own search would not apply.
			return forbidden("the token's scopes do not allow a search of " + target + ", which the chain reaches")
		}
		criteria := []Param{{Name: rest, Value: prm.Value}}
		if ct, ok := compartment[target]; ok && a.patient != "" {
			// With patient context only the patient's records of the type
			// can be seen: the search asks for those, or it would read
			// every patient's matching records, up to chainPages pages of
			// them, to find the patient's (and be refused for their number
			// on any server of real size). Found by probing the sandbox.
			criteria = append(criteria, Param{Name: ct.param, Value: "Patient/" + a.patient})
		}
		found, refused := p.visibleMatches(ctx, a, target, criteria, chainLimit, false)
		switch {
		case refused != nil:
			return refused
		case len(found) > chainLimit:
			return refuse(http.StatusForbidden, "too-costly", "the chain's criteria match more than "+strconv.Itoa(chainLimit)+" records; narrow them")
		}
		if len(found) == 0 {
			found = []match{{id: noMatch()}} // matches nothing, as a chain reaching no record would
		}
		refs := make([]string, len(found))
		for j, m := range found {
			refs[j] = target + "/" + m.id
		}
		*prm = Param{Name: param, Value: strings.Join(refs, ",")}
	}
	return nil
}

// visibleMatches runs a search of target by criteria with the proxy's
// credential and returns the matches the access may see, stopping once it
// has more than limit of them (pages hold chainLimit+1 records), with
// their versions when versions is set. It follows the search's
// pages, up to chainPages of them, so that what decides is the number of
// visible matches, whatever was withheld: only criteria matching more
// records than chainPages pages hold, withheld ones included, are refused
// for their number in all. target is a type, or a patient's compartment
// of one (Patient/{id}/Type), searched at that path.
func (p *Proxy) visibleMatches(ctx context.Context, a *access, target string, criteria []Param, limit int, versions bool) ([]match, *refusal) {
	path := target
	target = target[strings.LastIndex(target, "/")+1:]
	// One page size: the proxy's, or a smaller one the search's
	// authorisation set (a page of Provenances no larger than the targets
	// it may read: pageOfProvenances). (Found by FuzzConditionalWritesAgree:
	// both went, and a server read the first.)
	size := chainLimit + 1
	query := make([]Param, 0, len(criteria)+1)
	for _, prm := range criteria {
		if prm.Name != "_count" {
			query = append(query, prm)
		} else if n, err := strconv.Atoi(prm.Value); err == nil && n > 0 && n < size {
			size = n
		}
	}
	// A Binary or Provenance matches where the records it is bound to let
	// the access see it, as they are read (found by probing: with no reader,
	// a conditional update of a Binary the token may see matched none, and
	// created another).
	p.readTargets(ctx, a)
	page := p.upstreamURL(path, encodeQuery(append(query, Param{Name: "_count", Value: strconv.Itoa(size)})))
	var matches []match
	for n := 1; ; n++ {
		if !a.entries.spend() { // a Bundle's conditional writes share its budget
			return nil, tooManyReads()
		}
		next, refused := p.matchesOn(ctx, a, target, page, versions, &matches)
		switch {
		case refused != nil:
			return nil, refused
		case len(matches) > limit || next == "":
			return matches, nil
		case n == chainPages:
			return nil, refuse(http.StatusForbidden, "too-costly", "the criteria match too many records for the proxy to judge; narrow them")
		}
		// The proxy's credential goes only to the upstream: a next link
		// elsewhere is not followed.
		var own bool
		if page, own = p.ownPage(next); !own {
			return nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server's next page of the criteria's matches is not on its base")
		}
	}
}

// chainPages is how many pages of a search of its own (a chain's target, a
// conditional write's criteria) the proxy reads.
const chainPages = 10

// match is a record a search matched: its id, and its meta.versionId as
// the search saw it ("" when the server writes none, or it was not asked
// for).
type match struct{ id, version string }

// matchesOn reads one page of a search of target, adds the matches the
// access may see to matches (with their versions if versions is set), and
// returns the page's next link.
func (p *Proxy) matchesOn(ctx context.Context, a *access, target, page string, versions bool, matches *[]match) (string, *refusal) {
	st, body, _, err := p.getURL(ctx, page)
	switch {
	case err != nil:
		return "", refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case st != http.StatusOK:
		return "", refuse(http.StatusBadRequest, "invalid", "the FHIR server did not accept the criteria ("+strconv.Itoa(st)+")")
	}
	next, more, ok := readSearchPage(body, func(e *bundleEntry) {
		if !e.hasRes || e.notMatch || e.res.ResourceType != target {
			return
		}
		if a.judgeInBundle(e, body[e.resStart:e.resEnd], nil, false) == keep && !slices.ContainsFunc(*matches, func(m match) bool { return m.id == e.res.ID }) {
			m := match{id: e.res.ID}
			if versions {
				m.version = versionOf(body[e.resStart:e.resEnd])
			}
			*matches = append(*matches, m)
		}
	})
	if !ok {
		return "", refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the criteria with invalid JSON or not a Bundle")
	}
	if more && next == "" {
		return "", refuse(http.StatusBadGateway, "invalid", "the FHIR server's next page of the criteria's matches has no address")
	}
	return next, nil
}

// readSearchPage reads one page of a search the proxy runs itself, strictly:
// each entry goes to entry, and next is the page's next link (more: it has
// one, whether or not it has an address). ok is false for invalid JSON or
// anything but a Bundle.
func readSearchPage(body []byte, entry func(*bundleEntry)) (next string, more, ok bool) {
	var top projection
	s := jsonstrict.NewScanner(body)
	err := top.decode(s, readEntries(s, nil, func(e bundleEntry) error {
		entry(&e)
		return nil
	}), func(name string, start int64) error {
		if name == "link" && !more {
			next, more = nextURL(body[start:s.Offset()])
		}
		return nil
	})
	return next, more, err == nil && s.End() == nil && top.ResourceType == "Bundle"
}

// versionOf is a resource's meta.versionId, read from its JSON (strict:
// the page has been read), or "".
func versionOf(res []byte) string {
	v, _ := validators(res)
	return v
}

// validators are a resource's meta.versionId and meta.lastUpdated, read
// from its JSON (strict: it has been read), each "" where absent.
func validators(res []byte) (version, lastUpdated string) {
	s := jsonstrict.NewScanner(res)
	_ = readObject(s, func(name []byte) error {
		if string(name) != "meta" {
			return s.Skip()
		}
		return readObject(s, func(name []byte) error {
			switch string(name) {
			case "versionId":
				return readString(s, &version)
			case "lastUpdated":
				return readString(s, &lastUpdated)
			}
			return s.Skip()
		})
	})
	return version, lastUpdated
}

// noMatch is a random id in FHIR's id syntax ([A-Za-z0-9.-], which base64url
// is not), for a reference no record has.
func noMatch() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
