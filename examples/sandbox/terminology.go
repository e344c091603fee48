package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The sandbox's terminology: the code systems its synthetic records use
// (as fragments: the codes they hold) and value sets over them, with the
// terminology operations apps call through the proxy: ValueSet $expand and
// $validate-code, CodeSystem $lookup. Enough to test a form's pick list or
// a code check end to end; not a terminology server.

// sandboxVitalSigns is the canonical URL of the value set of the vital
// signs the sandbox records.
const sandboxVitalSigns = "http://smartkit.dev/fhir/ValueSet/sandbox-vital-signs"

// terminology returns the code systems and value sets the data set holds.
func terminology() []resource {
	concepts := func(codes ...[]string) []any {
		var out []any
		for _, c := range codes {
			out = append(out, map[string]any{"code": c[0], "display": c[1]})
		}
		return out
	}
	var loincCodes [][]string
	for _, v := range vitals {
		loincCodes = append(loincCodes, []string{v[0], v[1]})
	}
	for _, l := range labs {
		loincCodes = append(loincCodes, []string{l[0], l[1]})
	}
	loincCodes = append(loincCodes, []string{"11506-3", "Progress note"}, []string{"11488-4", "Consult note"}, []string{"75622-1", "HIV 1 and 2 tests"})
	categories := [][]string{{"social-history", "Social History"}, {"vital-signs", "Vital Signs"}, {"imaging", "Imaging"},
		{"laboratory", "Laboratory"}, {"procedure", "Procedure"}, {"survey", "Survey"}, {"exam", "Exam"}, {"therapy", "Therapy"},
		{"activity", "Activity"}}
	return []resource{
		{"resourceType": "CodeSystem", "id": "loinc-sandbox", "meta": meta(), "url": loinc, "name": "LOINC", "version": "2.77",
			"status": "active", "content": "fragment", "concept": concepts(loincCodes...)},
		{"resourceType": "CodeSystem", "id": "observation-category", "meta": meta(), "url": obsCategory, "name": "ObservationCategoryCodes",
			"status": "active", "content": "complete", "concept": concepts(categories...)},
		{"resourceType": "ValueSet", "id": "observation-category", "meta": meta(), "url": "http://hl7.org/fhir/ValueSet/observation-category",
			"name": "ObservationCategoryCodes", "status": "active", "compose": map[string]any{"include": []any{map[string]any{"system": obsCategory}}}},
		{"resourceType": "ValueSet", "id": "sandbox-vital-signs", "meta": meta(), "url": sandboxVitalSigns, "name": "SandboxVitalSigns",
			"status": "active", "compose": map[string]any{"include": []any{map[string]any{"system": loinc, "concept": concepts(func() [][]string {
				var out [][]string
				for _, v := range vitals {
					out = append(out, []string{v[0], v[1]})
				}
				return out
			}()...)}}}},
	}
}

// parametersInto adds a POSTed Parameters body's parameters to q: a
// primitive as its text, a Coding (coding) as its system and code.
func parametersInto(q url.Values, body io.Reader) error {
	var p struct {
		ResourceType string
		Parameter    []map[string]any
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&p); err != nil || p.ResourceType != "Parameters" {
		return errors.New("the body is not a Parameters resource")
	}
	for _, prm := range p.Parameter {
		name, _ := prm["name"].(string)
		for k, v := range prm {
			switch v := v.(type) {
			case map[string]any:
				if k == "valueCoding" && name == "coding" {
					q.Set("system", fmt.Sprint(v["system"]))
					q.Set("code", fmt.Sprint(v["code"]))
				}
			default:
				if strings.HasPrefix(k, "value") {
					q.Add(name, fmt.Sprint(v))
				}
			}
		}
	}
	return nil
}

// terminologyOp answers a terminology operation on typ (at instance level
// when id is set), or reports false when op is not one.
func (s *fhirServer) terminologyOp(w http.ResponseWriter, typ, id, op string, q url.Values) bool {
	var by string // the parameter naming the resource at type level
	switch typ + "/" + op {
	case "ValueSet/$expand", "ValueSet/$validate-code":
		by = "url"
	case "CodeSystem/$lookup":
		by = "system"
	default:
		return false
	}
	res, ok := s.canonical(typ, id, q.Get(by))
	if !ok {
		s.outcome(w, 404, "not-found", "no such "+typ)
		return true
	}
	switch op {
	case "$expand":
		s.expand(w, res, q)
	case "$validate-code":
		code, system := q.Get("code"), q.Get("system")
		var display string
		for _, c := range s.members(res) {
			if c.code == code && (system == "" || system == c.system) {
				display = c.display
			}
		}
		out := []any{map[string]any{"name": "result", "valueBoolean": display != ""}}
		if display != "" {
			out = append(out, map[string]any{"name": "display", "valueString": display})
		} else {
			out = append(out, map[string]any{"name": "message", "valueString": "the code is not in the value set"})
		}
		s.write(w, 200, resource{"resourceType": "Parameters", "parameter": out})
	case "$lookup":
		code := q.Get("code")
		for _, c := range asList(res["concept"]) {
			if m, _ := c.(map[string]any); m["code"] == code {
				s.write(w, 200, resource{"resourceType": "Parameters", "parameter": []any{
					map[string]any{"name": "name", "valueString": res["name"]},
					map[string]any{"name": "version", "valueString": res["version"]},
					map[string]any{"name": "display", "valueString": m["display"]}}})
				return true
			}
		}
		s.outcome(w, 404, "not-found", "no such code in "+res["url"].(string))
	}
	return true
}

// canonical finds the resource an operation runs on: by id, or by its
// canonical URL.
func (s *fhirServer) canonical(typ, id, canon string) (resource, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id != "" {
		res, ok := s.current[typ+"/"+id]
		return res, ok
	}
	for _, key := range s.order {
		if res := s.current[key]; strings.HasPrefix(key, typ+"/") && res["url"] == canon && canon != "" {
			return res, true
		}
	}
	return nil, false
}

// member is one code of a value set's expansion.
type member struct{ system, code, display string }

// members expands a value set's compose: each include's concepts, or
// every concept of its code system when it lists none.
func (s *fhirServer) members(vs resource) []member {
	var out []member
	compose, _ := vs["compose"].(map[string]any)
	for _, inc := range asList(compose["include"]) {
		inc, _ := inc.(map[string]any)
		system, _ := inc["system"].(string)
		list := asList(inc["concept"])
		if len(list) == 0 {
			if cs, ok := s.canonical("CodeSystem", "", system); ok {
				list = asList(cs["concept"])
			}
		}
		for _, c := range list {
			c, _ := c.(map[string]any)
			code, _ := c["code"].(string)
			display, _ := c["display"].(string)
			out = append(out, member{system, code, display})
		}
	}
	return out
}

// expand answers $expand: the value set with its expansion, filtered
// (filter: a case-insensitive substring of the code or display) and paged
// (offset, count).
func (s *fhirServer) expand(w http.ResponseWriter, vs resource, q url.Values) {
	all := s.members(vs)
	if f := strings.ToLower(q.Get("filter")); f != "" {
		all = slices.DeleteFunc(all, func(m member) bool {
			return !strings.Contains(strings.ToLower(m.display), f) && !strings.Contains(strings.ToLower(m.code), f)
		})
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	count, err := strconv.Atoi(q.Get("count"))
	if err != nil || count <= 0 {
		count = len(all)
	}
	page := all[min(max(offset, 0), len(all)):min(max(offset, 0)+count, len(all))]
	contains := []any{}
	for _, m := range page {
		contains = append(contains, map[string]any{"system": m.system, "code": m.code, "display": m.display})
	}
	expansion := map[string]any{"timestamp": time.Now().UTC().Format(time.RFC3339), "total": len(all), "offset": max(offset, 0)}
	if len(contains) > 0 {
		expansion["contains"] = contains
	}
	out := resource{"resourceType": "ValueSet", "url": vs["url"], "name": vs["name"], "status": vs["status"], "expansion": expansion}
	s.write(w, 200, out)
}
