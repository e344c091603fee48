// Package jsonstrict checks that a JSON text is one the whole stack will
// read the same way: well formed, valid UTF-8, no duplicate object members
// (compared after unescaping), nesting within a depth limit. encoding/json
// accepts duplicates and lets the last one win, which lets an attacker make
// two parsers disagree about a token or resource; this package refuses them.
package jsonstrict

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalid is matched by every error Check returns.
var ErrInvalid = errors.New("jsonstrict: invalid JSON")

// DefaultMaxDepth is the nesting limit of Check.
const DefaultMaxDepth = 64

type checkError struct {
	off int
	msg string
}

func (e *checkError) Error() string {
	return "jsonstrict: " + e.msg + " at offset " + strconv.Itoa(e.off)
}

func (e *checkError) Is(target error) bool { return target == ErrInvalid }

// Check validates b as a single JSON value with DefaultMaxDepth.
func Check(b []byte) error { return CheckDepth(b, DefaultMaxDepth) }

// CheckDepth validates b as a single JSON value nested at most maxDepth deep.
func CheckDepth(b []byte, maxDepth int) error {
	s := scanner{b: b, max: maxDepth}
	s.ws()
	if err := s.value(0); err != nil {
		return err
	}
	s.ws()
	if s.i != len(b) {
		return s.fail("trailing data")
	}
	return nil
}

type scanner struct {
	b   []byte
	i   int
	max int
}

func (s *scanner) fail(msg string) error { return &checkError{off: s.i, msg: msg} }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return s.fail("unexpected end")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.fail("unexpected character")
}

func (s *scanner) lit(w string) error {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.fail("bad literal")
	}
	s.i += len(w)
	return nil
}

func (s *scanner) number() error {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.fail("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.fail("bad number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.fail("bad number")
		}
	}
	if s.i == start {
		return s.fail("bad number")
	}
	return nil
}

// str scans a string and returns its raw contents (between the quotes) and
// whether it had escapes, via the returned slice being decoded if needed.
func (s *scanner) str() (key []byte, err error) {
	s.i++ // opening quote
	start := s.i
	escaped := false
	for s.i < len(s.b) {
		for s.i < len(s.b) && plain[s.b[s.i]] { // the common case, one table lookup a byte
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if escaped {
				return unescape(raw)
			}
			return raw, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, s.fail("bad escape")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, s.fail("bad escape")
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, s.fail("bad escape")
					}
				}
				s.i += 6
			default:
				return nil, s.fail("bad escape")
			}
		case c < 0x20:
			return nil, s.fail("control character in string")
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, s.fail("invalid UTF-8")
			}
			s.i += n
		}
	}
	return nil, s.fail("unterminated string")
}

// plain marks bytes a string may hold as they are: printable ASCII other
// than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// unescape decodes a string body already checked by str.
func unescape(raw []byte) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			out = append(out, raw[i])
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := rune(hex4(raw[i+1 : i+5]))
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(raw)+0 && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 := rune(hex4(raw[i+3 : i+7]))
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						return nil, &checkError{msg: "unpaired surrogate"}
					}
				} else {
					return nil, &checkError{msg: "unpaired surrogate"}
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, raw[i])
		}
	}
	return out, nil
}

func hex4(b []byte) int {
	n := 0
	for _, c := range b {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= int(c - '0')
		case c >= 'a' && c <= 'f':
			n |= int(c-'a') + 10
		default:
			n |= int(c-'A') + 10
		}
	}
	return n
}

func (s *scanner) object(depth int) error {
	if depth > s.max {
		return s.fail("nesting too deep")
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var small [16][]byte // keys of small objects, compared linearly
	keys := small[:0]
	var seen map[string]struct{}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected member name")
		}
		k, err := s.str()
		if err != nil {
			return err
		}
		if seen != nil {
			if _, dup := seen[string(k)]; dup {
				return s.fail("duplicate member " + strconv.Quote(string(k)))
			}
			seen[string(k)] = struct{}{}
		} else {
			for _, prev := range keys {
				if string(prev) == string(k) {
					return s.fail("duplicate member " + strconv.Quote(string(k)))
				}
			}
			if len(keys) < cap(small) {
				keys = append(keys, k)
			} else {
				seen = make(map[string]struct{}, 2*len(keys))
				for _, prev := range keys {
					seen[string(prev)] = struct{}{}
				}
				seen[string(k)] = struct{}{}
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected ':'")
		}
		s.i++
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unterminated object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or '}'")
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > s.max {
		return s.fail("nesting too deep")
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unterminated array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("expected ',' or ']'")
		}
	}
}
