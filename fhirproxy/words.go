package fhirproxy

import (
	"encoding/json"
	"strings"
	"unicode"

	"github.com/smartkit/smartkit/scopes"
)

// The FHIR server's words. An OperationOutcome the server writes (an
// error's, a delete's, a batch entry's) says in free text whatever the
// server chooses, and servers name other records there: HAPI refuses to
// delete a record others refer to with "Unable to delete Encounter/e1
// because at least one resource has a reference to this resource. First
// reference found was resource Observation/hiv-1 in path
// Observation.encounter", which tells a patient app of a test its
// clearance withholds, and its id. The proxy cannot judge text, so it
// passes the server's words only to an access that may read every record
// of every type (hearsServer). To any other it passes each issue's
// severity and code, which FHIR codes from fixed value sets, with words of
// its own; the audit event of a refused request keeps the server's first
// sentence, for the operators.

// hearsServer reports whether the FHIR server's own words may reach the
// client as written: whether the access may read every record of every
// type (no patient compartment, no label withheld, a read of every type
// unconstrained), and the host reshapes no answer (Proxy.Transform, which
// runs on resources: free text naming a patient would escape the
// de-identification it is usually for).
// It is decided once an access (a.hears), at the first answer that asks:
// an export's error file, a streamed Bundle, ask it line by line.
func (a *access) hearsServer() bool {
	if a.hears == 0 {
		a.hears = -1
		if a.seesAll() && a.tok != nil && !a.transformed {
			if d := a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: "*", Perms: scopes.Read}); d.Allowed && !d.Constrained() {
				a.hears = 1
			}
		}
	}
	return a.hears > 0
}

// wordsWithheld is the diagnostics of an OperationOutcome whose words the
// proxy withheld.
const wordsWithheld = "the FHIR server's own words are withheld from this token: they can name records it may not see"

// issueSeverities and issueTypes are the codes of OperationOutcome.issue's
// severity and code (R4's IssueSeverity and IssueType value sets).
var (
	issueSeverities = map[string]bool{"fatal": true, "error": true, "warning": true, "information": true}
	issueTypes      = map[string]bool{"invalid": true, "structure": true, "required": true, "value": true, "invariant": true,
		"security": true, "login": true, "unknown": true, "expired": true, "forbidden": true, "suppressed": true,
		"processing": true, "not-supported": true, "duplicate": true, "multiple-matches": true, "not-found": true,
		"deleted": true, "too-long": true, "code-invalid": true, "extension": true, "too-costly": true,
		"business-rule": true, "conflict": true, "transient": true, "lock-error": true, "no-store": true,
		"exception": true, "timeout": true, "incomplete": true, "throttled": true, "informational": true}
)

// outcomeIssues is what the proxy reads of an OperationOutcome the server
// wrote.
type outcomeIssues struct {
	Issue []struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
		Details     struct {
			Text string `json:"text"`
		} `json:"details"`
	} `json:"issue"`
}

// withheldOutcome writes an OperationOutcome the server wrote (raw, strict
// JSON) without its words: each issue's severity and code, where they are
// codes of their value sets (else error and processing), and nothing else
// of it (no diagnostics, details, expression or location, no extension,
// no text); the first issue says why. An outcome without issues gets one,
// an error when failed (the answer's status is), else information.
func withheldOutcome(raw []byte, failed bool) []byte {
	var oo outcomeIssues
	_ = json.Unmarshal(raw, &oo)
	type issue struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics,omitempty"`
	}
	issues := make([]issue, 0, max(len(oo.Issue), 1))
	for _, is := range oo.Issue {
		sev, code := is.Severity, is.Code
		if !issueSeverities[sev] {
			sev = "error"
		}
		if !issueTypes[code] {
			code = "processing"
		}
		issues = append(issues, issue{Severity: sev, Code: code})
	}
	if len(issues) == 0 {
		if failed {
			issues = append(issues, issue{Severity: "error", Code: "processing"})
		} else {
			issues = append(issues, issue{Severity: "information", Code: "informational"})
		}
	}
	issues[0].Diagnostics = wordsWithheld
	out, _ := json.Marshal(struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{"OperationOutcome", issues})
	return out
}

// serverWords returns the first words of an OperationOutcome the server
// wrote (its first issue's diagnostics, or details.text), at most 200
// characters, control characters as spaces: what an audit event keeps of
// the words withheld.
func serverWords(raw []byte) string {
	var oo outcomeIssues
	_ = json.Unmarshal(raw, &oo)
	for _, is := range oo.Issue {
		text := is.Diagnostics
		if text == "" {
			text = is.Details.Text
		}
		if text == "" {
			continue
		}
		text = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, text)
		if r := []rune(text); len(r) > 200 {
			text = string(r[:200]) + "…"
		}
		return text
	}
	return ""
}
