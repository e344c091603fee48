package fhirproxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/scopes"
)

// A write under a query-constrained scope (patient/Observation.cu?category=
// …|vital-signs) is held to the constraint the scope states in search
// syntax (SPEC-NOTES A7): a create's content must match it; an update's or
// a patch's stored version and its result must both match; a delete's
// stored version must. A search or a read asks the FHIR server to apply a
// constraint; a write cannot, since what must match is not stored yet. So
// the proxy evaluates it itself, on the JSON it checks, and it evaluates
// only what it can evaluate exactly: token parameters whose R4
// SearchParameter expression is one element path (tokenParams), with the
// token forms code, system|code, |code and system| and no modifier. A
// constraint with any other parameter cannot be met by a write: the proxy
// refuses it, as it refused every constrained write before, rather than
// guess what the FHIR server would match.
//
// Several constrained scopes allowing the write OR together, and the pairs
// of one AND, as for a search (scopes.Decision.Constraints); a value's
// comma-separated alternatives OR. Matching is exact and case-sensitive, as
// R4 defines a token match, so a write the proxy lets through is one a
// server's search with the constraint finds again.
//
// The same evaluation shows a write's answer (the record as stored) to a
// token whose read of the type is constrained: a read's answer the server
// proves, as a search by _id with the constraint, but a write's it does
// not, and without it the answer is withheld as unreadable.
//
// localConstraint is one compiled: a constraint the proxy evaluates itself.
type localConstraint struct {
	alts [][]tokenTest // ORed; the tests within one are ANDed
	text string        // the scopes whose constraints they are, for refusals
	// partial: some scopes' constraints could not be compiled, so what
	// matches only those does not match here.
	partial bool
}

// tokenTest is one name=value pair of a constraint, compiled.
type tokenTest struct {
	path   tokenPath
	values []tokenValue // ORed
}

// tokenValue is one token of a search value: a code alone (any system),
// or a system and a code where either may be empty (|code: no system;
// system|: any code in the system).
type tokenValue struct {
	system, code string
	hasSystem    bool
}

// elemKind is the FHIR type of the element a token parameter searches.
type elemKind uint8

const (
	conceptElem elemKind = iota
	codingElem
	codeElem // a primitive code: its system is the binding's, not in the record
)

// tokenPath is a token parameter's element: the members from the
// resource's root (any of them may repeat) and the element's type.
type tokenPath struct {
	members []string
	kind    elemKind
}

func tp(kind elemKind, members ...string) tokenPath { return tokenPath{members: members, kind: kind} }

// tokenParams are the R4 token search parameters whose expression is one
// element path, for the types apps write most, by type and name; _tag and
// _security hold for every type. A parameter whose expression is a union
// or a choice (AllergyIntolerance's code, MedicationRequest's code) is
// left out: the proxy does not evaluate it.
var tokenParams = map[string]map[string]tokenPath{
	"AllergyIntolerance": {"category": tp(codeElem, "category"), "clinical-status": tp(conceptElem, "clinicalStatus"),
		"verification-status": tp(conceptElem, "verificationStatus"), "type": tp(codeElem, "type"), "criticality": tp(codeElem, "criticality")},
	"CarePlan":      {"category": tp(conceptElem, "category"), "intent": tp(codeElem, "intent"), "status": tp(codeElem, "status")},
	"CareTeam":      {"category": tp(conceptElem, "category"), "status": tp(codeElem, "status")},
	"Communication": {"category": tp(conceptElem, "category"), "status": tp(codeElem, "status")},
	"Condition": {"category": tp(conceptElem, "category"), "code": tp(conceptElem, "code"),
		"clinical-status": tp(conceptElem, "clinicalStatus"), "verification-status": tp(conceptElem, "verificationStatus"),
		"severity": tp(conceptElem, "severity")},
	"Coverage":              {"status": tp(codeElem, "status"), "type": tp(conceptElem, "type")},
	"Device":                {"status": tp(codeElem, "status"), "type": tp(conceptElem, "type")},
	"DiagnosticReport":      {"category": tp(conceptElem, "category"), "code": tp(conceptElem, "code"), "status": tp(codeElem, "status")},
	"DocumentReference":     {"category": tp(conceptElem, "category"), "type": tp(conceptElem, "type"), "status": tp(codeElem, "status")},
	"Encounter":             {"class": tp(codingElem, "class"), "type": tp(conceptElem, "type"), "status": tp(codeElem, "status")},
	"Goal":                  {"category": tp(conceptElem, "category"), "lifecycle-status": tp(codeElem, "lifecycleStatus")},
	"Immunization":          {"status": tp(codeElem, "status"), "vaccine-code": tp(conceptElem, "vaccineCode")},
	"MedicationRequest":     {"category": tp(conceptElem, "category"), "intent": tp(codeElem, "intent"), "status": tp(codeElem, "status")},
	"MedicationStatement":   {"category": tp(conceptElem, "category"), "status": tp(codeElem, "status")},
	"Observation":           {"category": tp(conceptElem, "category"), "code": tp(conceptElem, "code"), "status": tp(codeElem, "status")},
	"Procedure":             {"category": tp(conceptElem, "category"), "code": tp(conceptElem, "code"), "status": tp(codeElem, "status")},
	"QuestionnaireResponse": {"status": tp(codeElem, "status")},
	"ServiceRequest": {"category": tp(conceptElem, "category"), "code": tp(conceptElem, "code"),
		"intent": tp(codeElem, "intent"), "status": tp(codeElem, "status")},
	"Specimen": {"type": tp(conceptElem, "type"), "status": tp(codeElem, "status")},
}

// anyTypeTokens are the token parameters every resource has.
var anyTypeTokens = map[string]tokenPath{"_tag": tp(codingElem, "meta", "tag"), "_security": tp(codingElem, "meta", "security")}

// compileConstraint compiles the constraints of the scopes that allow an
// access to typ (d is constrained): a write, an earlier version, what a
// search brings unmatched. A scope whose constraint the proxy cannot
// evaluate allows nothing here; when no scope's can be, the write or the
// version is refused before anything is read.
func compileConstraint(typ string, d scopes.Decision) (*localConstraint, *refusal) {
	lc := &localConstraint{}
	var texts, unread []string
	for sc := range d.Constraints() {
		params := sc.Constraint()
		var alt []tokenTest
		for _, prm := range params {
			t, ok := compileTest(typ, prm)
			if !ok {
				alt = nil
				unread = append(unread, prm.Name+"="+prm.Value)
				break
			}
			alt = append(alt, t)
		}
		if alt != nil {
			lc.alts = append(lc.alts, alt)
			texts = append(texts, sc.String())
		}
	}
	if len(lc.alts) == 0 {
		return nil, refuse(http.StatusForbidden, "forbidden", "the proxy cannot check a record against the scope's constraint ("+strings.Join(unread, ", ")+
			"): it evaluates token parameters with one element path (category, code, status and the like, _tag, _security), without modifiers")
	}
	lc.text = strings.Join(texts, " or ")
	lc.partial = len(unread) > 0
	return lc, nil
}

// compileTest compiles one pair, or reports that the proxy cannot evaluate
// it: an unknown parameter, a modifier or chain (the name's ':' or '.'),
// an escape, or a system named for a primitive code.
func compileTest(typ string, prm scopes.Param) (tokenTest, bool) {
	path, ok := anyTypeTokens[prm.Name]
	if !ok {
		path, ok = tokenParams[typ][prm.Name]
	}
	if !ok {
		return tokenTest{}, false
	}
	if strings.IndexByte(prm.Value, '\\') >= 0 {
		// FHIR's escapes (\, \| \$ \\): a scope holds one only
		// percent-encoded (RFC 6749 keeps the backslash out of a scope), and
		// the proxy does not read them.
		return tokenTest{}, false
	}
	t := tokenTest{path: path}
	for alt := range strings.SplitSeq(prm.Value, ",") {
		var v tokenValue
		var found bool
		v.system, v.code, found = strings.Cut(alt, "|")
		switch {
		case !found:
			v.system, v.code = "", alt
		case strings.IndexByte(v.code, '|') >= 0:
			return tokenTest{}, false
		}
		v.hasSystem = found
		switch {
		case v.code == "" && (!v.hasSystem || v.system == ""): // "" or "|": matches nothing a server agrees on
			return tokenTest{}, false
		case v.hasSystem && path.kind == codeElem: // the system is the binding's, which the proxy does not know
			return tokenTest{}, false
		}
		t.values = append(t.values, v)
	}
	return t, true
}

// elements are the top-level members the constraint reads.
func (lc *localConstraint) elements() []string {
	var out []string
	for _, alt := range lc.alts {
		for _, t := range alt {
			if !slices.Contains(out, t.path.members[0]) {
				out = append(out, t.path.members[0])
			}
		}
	}
	return out
}

// holds refuses content (a create's, an update's, a patch's result) that
// matches none of the constraints.
func (lc *localConstraint) holds(content []byte) *refusal {
	if !lc.matches(content) {
		return refuse(http.StatusForbidden, "forbidden", "the resource does not match the constraint of the token's scope "+lc.text)
	}
	return nil
}

// matches reports whether a resource's JSON matches at least one of the
// constraints. JSON that is not one strict object matches none (found by
// FuzzWriteConstraint: a decoder alone ignored what followed the object;
// and a duplicate member would be read as its last).
func (lc *localConstraint) matches(resource []byte) bool {
	var root map[string]any
	if jsonstrict.Check(resource) != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(resource))
	dec.UseNumber() // a number too large for a float64 is still JSON
	if dec.Decode(&root) != nil {
		return false
	}
	for _, alt := range lc.alts {
		all := true
		for _, t := range alt {
			if !t.matches(root) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// matches reports whether any element at the test's path matches any of
// its values.
func (t tokenTest) matches(root map[string]any) bool {
	for _, el := range elements(root, t.path.members) {
		for _, v := range t.values {
			if v.matches(el, t.path.kind) {
				return true
			}
		}
	}
	return false
}

// elements are the values at a path of members from v, an array on the
// way (a repeating element) taken one value at a time. An array in an
// array is no FHIR element, and matches nothing.
func elements(v any, members []string) []any {
	if len(members) == 0 {
		return items(v)
	}
	var out []any
	for _, x := range items(v) {
		if obj, ok := x.(map[string]any); ok {
			if next, ok := obj[members[0]]; ok {
				out = append(out, elements(next, members[1:])...)
			}
		}
	}
	return out
}

// items are an array's items, or v alone.
func items(v any) []any {
	if arr, ok := v.([]any); ok {
		return arr
	}
	return []any{v}
}

// matches reports whether one element of the kind matches the token.
func (v tokenValue) matches(el any, kind elemKind) bool {
	switch kind {
	case codeElem:
		s, ok := el.(string)
		return ok && s == v.code
	case codingElem:
		obj, ok := el.(map[string]any)
		return ok && v.matchesCoding(obj)
	}
	obj, ok := el.(map[string]any)
	if !ok {
		return false
	}
	codings, _ := obj["coding"].([]any)
	for _, c := range codings {
		if cm, ok := c.(map[string]any); ok && v.matchesCoding(cm) {
			return true
		}
	}
	return false
}

// matchesCoding reports whether a Coding matches the token.
func (v tokenValue) matchesCoding(c map[string]any) bool {
	sys, hasSys := c["system"].(string)
	cd, _ := c["code"].(string)
	switch {
	case !v.hasSystem:
		return cd == v.code
	case v.system == "":
		_, present := c["system"]
		return !present && cd == v.code
	case v.code == "":
		return hasSys && sys == v.system
	}
	return hasSys && sys == v.system && cd == v.code
}
