package fhirproxy

import (
	"net/http"
	"slices"
	"strconv"
)

// countLimit is the most matches the proxy counts for _summary=count.
const countLimit = 1000

// asksCount reports whether a search asks for its total alone:
// _summary=count, or _count=0 (FHIR: the total, and no entries).
func asksCount(params []Param) bool {
	return slices.ContainsFunc(params, func(p Param) bool {
		return p.Name == "_summary" && p.Value == "count" || p.Name == "_count" && p.Value == "0"
	})
}

// countMatches answers a search with _summary=count (or _count=0) where
// the server's count cannot stand: for a clearance short of every label,
// the server would count what the clearance withholds, and so tell, by the
// difference from the records the search shows, that withheld records
// exist; under a query constraint of the type searched, the proxy may hold
// the matches itself and would send the server's count without its total.
// The proxy runs the search itself (as authorised:
// the compartment, the constraints and resolved chains in it; without
// _summary, and without the client's _count, which would only make its
// pages smaller) and counts the matches the access may see, across up to
// chainPages pages: a searchset Bundle with the total alone, as a server
// answers; a compartment search (Patient/{id}/Type) is counted so too, at
// its path (found by FuzzPatientForms: Observation?patient=p&_count=0 was
// counted, Patient/p/Observation?_count=0 refused). More than countLimit
// visible matches, or more pages than it reads, is refused (too-costly):
// narrow the search.
func (p *Proxy) countMatches(w http.ResponseWriter, r *http.Request, x *exchange) {
	params := make([]Param, 0, len(x.in.Params))
	for _, prm := range x.in.Params {
		// (A Provenance search's page size is the proxy's own:
		// pageOfProvenances.)
		if prm.Name != "_summary" && (prm.Name != "_count" || x.in.Type == "Provenance") {
			params = append(params, prm)
		}
	}
	target := x.in.Type
	if x.in.Kind == SearchCompart { // searched where it was asked: a compartment may hold more than one parameter finds
		target = "Patient/" + x.in.Compartment + "/" + x.in.Type
	}
	found, ref := p.visibleMatches(r.Context(), x.a, target, params, countLimit, false)
	if ref == nil && len(found) > countLimit {
		ref = refuse(http.StatusForbidden, "too-costly", "more than "+strconv.Itoa(countLimit)+" records match, more than the proxy counts; narrow the search")
	}
	if ref != nil {
		p.finish(w, r, &x.ev, ref, nil)
		return
	}
	x.ev.Reason = "counted by the proxy: the matches the token may see"
	if err := p.record(r.Context(), &x.ev); err != nil {
		p.finish(w, r, &x.ev, refuse(http.StatusInternalServerError, "exception", "the request could not be audited"), err)
		return
	}
	body := []byte(`{"resourceType":"Bundle","type":"searchset","total":` + strconv.Itoa(len(found)) + `}`)
	w.Header()["Content-Type"] = []string{fhirJSONType}
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = x.w.Write(body)
}
