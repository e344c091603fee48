package scopes

import (
	"strings"
	"unicode/utf8"
)

// parseQuery parses the constraint after "?" of a v2 scope (digest §1.4):
// one or more name=value pairs joined by "&", split at the first "=", each
// side percent-decoded once like a FHIR search URL ("+" is a space). Empty
// pairs, names or values are refused, because a FHIR server ignores an
// empty search parameter and the scope would silently widen.
func parseQuery(q string) ([]Param, Reason) {
	if q == "" {
		return nil, ReasonEmptyQuery
	}
	if strings.IndexByte(q, '?') >= 0 || strings.IndexByte(q, '#') >= 0 {
		return nil, ReasonQuerySyntax
	}
	params := make([]Param, 0, strings.Count(q, "&")+1)
	for pair := range strings.SplitSeq(q, "&") {
		if pair == "" {
			return nil, ReasonEmptyQuery
		}
		name, value, ok := strings.Cut(pair, "=")
		if name == "" {
			return nil, ReasonEmptyName
		}
		if !ok || value == "" {
			return nil, ReasonEmptyValue
		}
		var good bool
		if name, good = unescape(name); !good {
			return nil, ReasonEscape
		}
		if value, good = unescape(value); !good {
			return nil, ReasonEscape
		}
		if name == "" {
			return nil, ReasonEmptyName
		}
		if value == "" {
			return nil, ReasonEmptyValue
		}
		params = append(params, Param{Name: name, Value: value})
	}
	return params, ""
}

// unescape decodes %XX escapes and "+" as a space. It returns s itself,
// without allocating, when there is nothing to decode. The result must be
// valid UTF-8.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// paramsSubset reports whether every pair of a also appears in b. Pairs are
// compared decoded; repetition does not matter (FHIR ANDs repeated names).
func paramsSubset(a, b []Param) bool {
outer:
	for _, p := range a {
		for _, q := range b {
			if p == q {
				continue outer
			}
		}
		return false
	}
	return true
}
