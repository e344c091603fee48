package jsonstrict

import (
	"encoding/binary"
	"hash/maphash"
	"io"
	"math/bits"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Scanner reads one JSON value member by member, with Check's rules: a
// caller decodes the members it cares about (String, Object, Array) and
// Skips the rest, and every byte is checked either way. Any error leaves the
// Scanner unusable.
//
// A Scanner made by NewStreamScanner reads its input through a window: it
// may drop the bytes before the offset last given to Release, and refuses
// (ErrTooLarge) to hold more than its limit at once. Offsets are counted
// from the start of the input. Slices a streaming Scanner returns (member
// names, strings, Bytes) may be overwritten once it reads on after a
// Release: use or copy them first (an Object callback reads the name before
// the value). A Scanner over a slice never overwrites them.
type Scanner struct {
	b      []byte // the window; b[0] is at input offset base
	i      int    // next byte to read, in b
	base   int64
	r      io.Reader // nil: b is the whole input
	rerr   error     // the reader's error once it returned one
	keep   int64     // bytes before this offset may be dropped
	limit  int       // most bytes the window may hold
	max    int       // nesting limit
	depth  int
	member int64 // offset of the current member name
	fold   bool  // names equal under case folding are duplicates (Check)
}

// window is how much a streaming Scanner reads at a time.
const window = 32 << 10

// NewScanner reads b.
func NewScanner(b []byte) *Scanner { return &Scanner{b: b, max: DefaultMaxDepth} }

// NewFoldingScanner reads b refusing, as Check does, member names that
// repeat under case folding, in the objects it reads and in those it skips:
// one pass for a document that is both checked and read.
func NewFoldingScanner(b []byte) *Scanner { return &Scanner{b: b, max: DefaultMaxDepth, fold: true} }

// NewStreamScanner reads r, holding at most limit bytes at once.
func NewStreamScanner(r io.Reader, limit int) *Scanner {
	return &Scanner{r: r, limit: limit, max: DefaultMaxDepth, b: make([]byte, 0, window)}
}

// Offset returns the input offset of the next byte the Scanner will read:
// after a value, its end; inside an Array callback, the element's start.
func (s *Scanner) Offset() int64 { return s.base + int64(s.i) }

// MemberOffset returns, inside an Object callback and before the value is
// read, the offset of the member's name (its opening quote).
func (s *Scanner) MemberOffset() int64 { return s.member }

// Bytes returns the input between two offsets, which must not have been
// released.
func (s *Scanner) Bytes(from, to int64) []byte { return s.b[from-s.base : to-s.base] }

// Release lets a streaming Scanner drop the input before off, which must
// not be past the end of the last value read.
func (s *Scanner) Release(off int64) { s.keep = off }

// Kind returns the first byte of the next value ('{', '[', '"', 't', 'f',
// 'n', '-' or a digit), or 0 at the end of the input.
func (s *Scanner) Kind() byte {
	if !s.ws() {
		return 0
	}
	return s.b[s.i]
}

// End checks that nothing but white space follows.
func (s *Scanner) End() error {
	if s.ws() {
		return s.fail("trailing data")
	}
	if s.rerr != nil && s.rerr != io.EOF {
		return s.rerr
	}
	return nil
}

// Skip reads and checks the next value, whatever it is.
func (s *Scanner) Skip() error {
	if !s.ws() {
		return s.eof("unexpected end")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array(nil)
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

// String reads the next value, which must be a string, and returns it
// unescaped.
func (s *Scanner) String() ([]byte, error) {
	if !s.ws() {
		return nil, s.eof("unexpected end")
	}
	if s.b[s.i] != '"' {
		return nil, s.fail("expected a string")
	}
	return s.str()
}

// Object reads the next value, which must be an object, calling member for
// each member with its name unescaped; member must read exactly one value
// (Skip it, at least).
func (s *Scanner) Object(member func(name []byte) error) error {
	if !s.ws() {
		return s.eof("unexpected end")
	}
	if s.b[s.i] != '{' {
		return s.fail("expected an object")
	}
	return s.object(member)
}

// Array reads the next value, which must be an array, calling elem before
// each element; elem must read exactly one value.
func (s *Scanner) Array(elem func() error) error {
	if !s.ws() {
		return s.eof("unexpected end")
	}
	if s.b[s.i] != '[' {
		return s.fail("expected an array")
	}
	return s.array(elem)
}

func (s *Scanner) fail(msg string) error { return &checkError{off: s.Offset(), msg: msg} }

// eof reports running out of input: the reader's own failure, or a
// truncated text.
func (s *Scanner) eof(msg string) error {
	if s.rerr != nil && s.rerr != io.EOF {
		return s.rerr
	}
	return s.fail(msg)
}

// more reads more input into the window, first moving what is still held
// to its front over the released bytes (the duplicate check keeps hashes,
// not slices of the window), or into a larger array when a single value
// outgrows it. It reports whether there is at least one more byte.
func (s *Scanner) more() bool {
	if s.r == nil || s.rerr != nil {
		return false
	}
	drop := min(max(int(s.keep-s.base), 0), s.i)
	held := len(s.b) - drop
	if held >= s.limit {
		s.rerr = ErrTooLarge
		return false
	}
	if drop > 0 { // move what is still held to the front, over what was released
		copy(s.b, s.b[drop:])
		s.b, s.base, s.i = s.b[:held], s.base+int64(drop), s.i-drop
	}
	if cap(s.b)-len(s.b) < window/4 { // one value outgrows the window: double it
		nb := make([]byte, len(s.b), 2*len(s.b)+window)
		copy(nb, s.b)
		s.b = nb
	}
	for {
		n, err := s.r.Read(s.b[len(s.b):cap(s.b)])
		s.b = s.b[:len(s.b)+n]
		if err != nil {
			s.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
}

// need reports whether n bytes are available from the current one.
func (s *Scanner) need(n int) bool {
	for len(s.b)-s.i < n {
		if !s.more() {
			return false
		}
	}
	return true
}

// ws skips white space and reports whether a byte follows. The common case,
// a value or delimiter right at hand, is inlined at its callers.
func (s *Scanner) ws() bool {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return true
	}
	return s.wsSlow()
}

func (s *Scanner) wsSlow() bool {
	for {
		b, i := s.b, s.i
		for ; i < len(b); i++ {
			if c := b[i]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				s.i = i
				return true
			}
		}
		s.i = i
		if !s.more() {
			return false
		}
	}
}

func (s *Scanner) lit(w string) error {
	if !s.need(len(w)) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.fail("bad literal")
	}
	s.i += len(w)
	return nil
}

// next returns the current byte, if there is one.
func (s *Scanner) next() (byte, bool) {
	if s.i < len(s.b) || s.more() {
		return s.b[s.i], true
	}
	return 0, false
}

func (s *Scanner) digits() int {
	n := 0
	for c, ok := s.next(); ok && c >= '0' && c <= '9'; c, ok = s.next() {
		s.i++
		n++
	}
	return n
}

func (s *Scanner) number() error {
	if c, _ := s.next(); c == '-' {
		s.i++
	}
	if c, _ := s.next(); c == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.fail("bad number")
	}
	if c, _ := s.next(); c == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("bad number")
		}
	}
	if c, _ := s.next(); c == 'e' || c == 'E' {
		s.i++
		if c, _ := s.next(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("bad number")
		}
	}
	return nil
}

// str reads a string and returns its contents, unescaped when it has escapes.
func (s *Scanner) str() ([]byte, error) {
	s.i++ // opening quote
	start := s.Offset()
	escaped := false
	for {
		s.i = skipPlain(s.b, s.i)
		if s.i >= len(s.b) {
			if !s.more() {
				return nil, s.eof("unterminated string")
			}
			continue
		}
		switch c := s.b[s.i]; {
		case c == '"':
			raw := s.b[start-s.base : s.i]
			s.i++
			if escaped {
				return unescape(raw)
			}
			return raw, nil
		case c == '\\':
			escaped = true
			if !s.need(2) {
				return nil, s.fail("bad escape")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if !s.need(6) {
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
		default: // c >= 0x80: plain covers the rest of ASCII
			s.need(utf8.UTFMax)
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, s.fail("invalid UTF-8")
			}
			s.i += n
		}
	}
}

// skipPlain returns the index of the first byte from i that is not plain
// (a quote, a backslash, a control character or non-ASCII), eight bytes at
// a time, then byte by byte for the last few.
func skipPlain(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(ones*'"'), x^(ones*'\\') // zero bytes where x has a quote, a backslash
		// The high bit of each byte below 0x20, zero in q or bs, or with its
		// own high bit set. A borrow can mark bytes above a marked one, never
		// below: the lowest mark is the first byte that is not plain.
		if m := ((x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs | x) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
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
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
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

func (s *Scanner) object(member func([]byte) error) error {
	if s.depth++; s.depth > s.max {
		return s.fail("nesting too deep")
	}
	err := s.members(member)
	s.depth--
	return err
}

func (s *Scanner) members(member func([]byte) error) error {
	s.i++ // '{'
	if !s.ws() {
		return s.eof("unterminated object")
	}
	if s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var names nameSet
	for {
		if !s.ws() || s.b[s.i] != '"' {
			return s.eof("expected member name")
		}
		s.member = s.Offset()
		k, err := s.str()
		if err != nil {
			return err
		}
		if names.add(k, s.fold) {
			return s.fail("duplicate member " + strconv.Quote(string(k)))
		}
		if !s.ws() || s.b[s.i] != ':' {
			return s.eof("expected ':'")
		}
		s.i++
		if !s.ws() {
			return s.eof("unexpected end")
		}
		if member == nil {
			err = s.Skip()
		} else {
			err = member(k)
		}
		if err != nil {
			return err
		}
		if !s.ws() {
			return s.eof("unterminated object")
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

// nameSet remembers the member names of one object for the duplicate
// check as 64-bit hashes (of the folded name when folding), with a seed
// drawn per process: in an array searched linearly while the object is
// small, in a map after. It holds no bytes of the input, so a streaming
// window may move freely. Two distinct names with the same hash would be
// refused as duplicates: fail closed, and with a secret seed about as
// likely as guessing it.
type nameSet struct {
	small [16]uint64
	n     int
	seen  map[uint64]struct{}
}

var nameSeed = maphash.MakeSeed()

// add reports whether name repeats an earlier one, and remembers it.
func (ns *nameSet) add(name []byte, fold bool) bool {
	h := nameHash(name, fold)
	if ns.seen == nil {
		for _, prev := range ns.small[:ns.n] {
			if prev == h {
				return true
			}
		}
		if ns.n < len(ns.small) {
			ns.small[ns.n] = h
			ns.n++
			return false
		}
		ns.seen = make(map[uint64]struct{}, 2*ns.n)
		for _, prev := range ns.small[:ns.n] {
			ns.seen[prev] = struct{}{}
		}
	}
	if _, ok := ns.seen[h]; ok {
		return true
	}
	ns.seen[h] = struct{}{}
	return false
}

// nameHash hashes a name as the duplicate check compares it: folded when
// fold is set (each rune replaced by the smallest of its case-folding
// orbit, as encoding/json matches names).
func nameHash(name []byte, fold bool) uint64 {
	if !fold {
		return maphash.Bytes(nameSeed, name)
	}
	var buf [64]byte
	out := buf[:0]
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' { // the smallest of {A, a} (and of {K, k, Kelvin sign})
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		out = utf8.AppendRune(out, low)
		i += n
	}
	return maphash.Bytes(nameSeed, out)
}

func (s *Scanner) array(elem func() error) error {
	if s.depth++; s.depth > s.max {
		return s.fail("nesting too deep")
	}
	err := s.elements(elem)
	s.depth--
	return err
}

func (s *Scanner) elements(elem func() error) error {
	s.i++ // '['
	if !s.ws() {
		return s.eof("unterminated array")
	}
	if s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if !s.ws() {
			return s.eof("unexpected end")
		}
		var err error
		if elem == nil {
			err = s.Skip()
		} else {
			err = elem()
		}
		if err != nil {
			return err
		}
		if !s.ws() {
			return s.eof("unterminated array")
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
