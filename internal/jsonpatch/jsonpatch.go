package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// Operation is one operation of a JSON Patch as Parse read it: its op
// (add, remove, replace, move, copy or test), its path and from (JSON
// Pointers, as written), and its value (the JSON text, as written; nil
// when the op takes none).
type Operation struct {
	Op, Path, From string
	Value          json.RawMessage
}

// Patch is a JSON Patch: its operations, applied in order.
type Patch []Operation

// ErrNotPatch is the error Parse returns for a text that is not one
// strict JSON Patch.
var ErrNotPatch = errors.New("jsonpatch: not a JSON Patch")

// Parse reads a JSON Patch strictly: one JSON array of objects, each with
// a known op and the members RFC 6902 requires of it (path; from for move
// and copy; value for add, replace and test), its pointers valid, its text
// strict JSON (jsonstrict), its member names each in one case and no name
// twice under Unicode case folding. A reader that folds case, as
// encoding/json does, would otherwise take a "From" or a "Value" for the
// member, and one that does not would ignore it: one text, two patches.
// Members RFC 6902 does not define are read and ignored, as it says.
func Parse(b []byte) (Patch, error) {
	var p Patch
	s := jsonstrict.NewFoldingScanner(b)
	err := s.Array(func() error {
		var op Operation
		var hasOp, hasPath, hasFrom bool
		str := func(dst *string, has *bool) error {
			v, err := s.String()
			*dst, *has = string(v), true
			return err
		}
		err := s.Object(func(name []byte) error {
			switch string(name) {
			case "op":
				return str(&op.Op, &hasOp)
			case "path":
				return str(&op.Path, &hasPath)
			case "from":
				return str(&op.From, &hasFrom)
			case "value":
				s.Kind() // past white space: at the value's first byte
				start := s.Offset()
				if err := s.Skip(); err != nil {
					return err
				}
				op.Value = bytes.Clone(s.Bytes(start, s.Offset()))
				return nil
			}
			return s.Skip()
		})
		switch {
		case err != nil:
			return err
		case !hasOp || !hasPath || !pointer(op.Path) || hasFrom && !pointer(op.From):
			return ErrNotPatch
		}
		switch op.Op {
		case "add", "replace", "test":
			if op.Value == nil {
				return ErrNotPatch
			}
			op.From = ""
		case "move", "copy":
			if !hasFrom {
				return ErrNotPatch
			}
			op.Value = nil
		case "remove":
			op.From, op.Value = "", nil
		default:
			return ErrNotPatch
		}
		p = append(p, op)
		return nil
	})
	if err == nil {
		err = s.End()
	}
	if err != nil {
		return nil, ErrNotPatch
	}
	if p == nil {
		p = Patch{}
	}
	return p, nil
}

// Apply applies the patch to a JSON document and returns the result. An
// operation that cannot be applied (a path that names nothing, a failed
// test) is an error, and nothing is applied: doc is never changed.
// Numbers keep their digits, and markup is written as it is (not escaped
// as encoding/json escapes it for HTML). A patch of more than MaxOps
// operations, or whose copies duplicate more than 100,000 JSON values in
// all, is an error: both would let a small patch cost much.
func (p Patch) Apply(doc []byte) ([]byte, error) {
	if len(p) > MaxOps {
		return nil, errors.New("jsonpatch: the patch has more than " + strconv.Itoa(MaxOps) + " operations")
	}
	root, err := decodeJSON(doc)
	if err != nil {
		return nil, errors.New("jsonpatch: the document is not one JSON value")
	}
	copied := 0 // values a copy duplicates: copies of copies could double the document each time
	for i, op := range p {
		if root, err = applyOp(root, op, &copied); err != nil {
			return nil, errors.New("jsonpatch: operation " + strconv.Itoa(i) + ": " + err.Error())
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// decodeJSON decodes one JSON value, numbers as written.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// MaxOps is how many operations a patch Apply applies may have: an add or
// a remove at the front of an array moves all of it, so many of them
// would cost the square of their number.
const MaxOps = 1000

// maxCopied is how many JSON values (each member, element and scalar) the
// copy operations of one patch may duplicate in all.
const maxCopied = 100_000

// applyOp applies one operation to root and returns the new root; copied
// counts the values copies have duplicated.
func applyOp(root any, op Operation, copied *int) (any, error) {
	at, err := pointerTokens(op.Path)
	if err != nil {
		return nil, err
	}
	value := func() (any, error) {
		if op.Value == nil {
			return nil, errors.New(op.Op + " needs a value")
		}
		return decodeJSON(op.Value)
	}
	source := func() ([]string, error) { return pointerTokens(op.From) }
	switch op.Op {
	case "add":
		v, err := value()
		if err != nil {
			return nil, err
		}
		return add(root, at, v)
	case "remove":
		root, _, err := remove(root, at)
		return root, err
	case "replace":
		v, err := value()
		if err != nil || len(at) == 0 {
			return v, err // the whole document
		}
		if root, _, err = remove(root, at); err != nil {
			return nil, err
		}
		return add(root, at, v)
	case "move":
		src, err := source()
		if err != nil {
			return nil, err
		}
		if len(src) < len(at) && slices.Equal(src, at[:len(src)]) {
			return nil, errors.New("a value cannot be moved into itself")
		}
		root, v, err := remove(root, src)
		if err != nil {
			return nil, err
		}
		return add(root, at, v)
	case "copy":
		src, err := source()
		if err != nil {
			return nil, err
		}
		v, err := get(root, src)
		if err != nil {
			return nil, err
		}
		if *copied += jsonValues(v); *copied > maxCopied {
			return nil, errors.New("the copies make the document too large")
		}
		return add(root, at, deepCopy(v))
	case "test":
		v, err := value()
		if err != nil {
			return nil, err
		}
		have, err := get(root, at)
		if err != nil {
			return nil, err
		}
		if !jsonEqual(have, v) {
			return nil, errors.New("the test of " + strconv.Quote(op.Path) + " failed")
		}
		return root, nil
	}
	return nil, errors.New("unknown op " + strconv.Quote(op.Op))
}

// pointerTokens splits a JSON Pointer (RFC 6901) into its reference
// tokens, unescaped (~1 is /, ~0 is ~).
func pointerTokens(p string) ([]string, error) {
	if !pointer(p) {
		return nil, errors.New("the pointer " + strconv.Quote(p) + " is not a JSON Pointer")
	}
	if p == "" {
		return nil, nil
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = unescapePointer.Replace(t)
	}
	return toks, nil
}

// index reads an array index token: 0, or digits without a leading zero,
// below n (or equal to n, when end is allowed, as is "-").
func index(tok string, n int, end bool) (int, error) {
	if end && tok == "-" {
		return n, nil
	}
	bad := errors.New("no array element " + strconv.Quote(tok))
	if tok == "" || len(tok) > 1 && tok[0] == '0' || strings.Trim(tok, "0123456789") != "" {
		return 0, bad
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i > n || i == n && !end {
		return 0, bad
	}
	return i, nil
}

// get returns the value at a pointer.
func get(v any, at []string) (any, error) {
	for _, tok := range at {
		switch c := v.(type) {
		case map[string]any:
			m, ok := c[tok]
			if !ok {
				return nil, errors.New("no member " + strconv.Quote(tok))
			}
			v = m
		case []any:
			i, err := index(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			v = c[i]
		default:
			return nil, errors.New("nothing at " + strconv.Quote(tok))
		}
	}
	return v, nil
}

// parentOf returns the value holding the one a non-empty pointer names,
// and the pointer's last token.
func parentOf(root any, at []string) (any, string, error) {
	parent, err := get(root, at[:len(at)-1])
	return parent, at[len(at)-1], err
}

// add sets the value at a pointer: a member added or replaced, an element
// inserted, or the whole document.
func add(root any, at []string, v any) (any, error) { return put(root, at, v, true) }

// put sets the value at a pointer: in an object the member, in an array
// the element (inserted, or else replacing the one there, which must
// exist), or the whole document.
func put(root any, at []string, v any, insert bool) (any, error) {
	if len(at) == 0 {
		return v, nil
	}
	parent, last, err := parentOf(root, at)
	if err != nil {
		return nil, err
	}
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
		return root, nil
	case []any:
		i, err := index(last, len(c), insert)
		switch {
		case err != nil:
			return nil, err
		case insert: // a new slice, put in place of the old one
			return put(root, at[:len(at)-1], append(c[:i:i], append([]any{v}, c[i:]...)...), false)
		}
		c[i] = v
		return root, nil
	}
	return nil, errors.New("nothing to add to at " + strconv.Quote(last))
}

// remove removes the value at a pointer and returns it.
func remove(root any, at []string) (any, any, error) {
	if len(at) == 0 {
		return nil, nil, errors.New("the whole document cannot be removed")
	}
	parent, last, err := parentOf(root, at)
	if err != nil {
		return nil, nil, err
	}
	switch c := parent.(type) {
	case map[string]any:
		v, ok := c[last]
		if !ok {
			return nil, nil, errors.New("no member " + strconv.Quote(last))
		}
		delete(c, last)
		return root, v, nil
	case []any:
		i, err := index(last, len(c), false)
		if err != nil {
			return nil, nil, err
		}
		v := c[i]
		root, err = put(root, at[:len(at)-1], append(c[:i:i], c[i+1:]...), false)
		return root, v, err
	}
	return nil, nil, errors.New("nothing to remove at " + strconv.Quote(last))
}

// deepCopy copies a decoded JSON value, so that a copied value and its
// source change apart.
func deepCopy(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, e := range c {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(c))
		for i, e := range c {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// jsonValues counts the JSON values v holds, itself included, stopping once
// past maxCopied.
func jsonValues(v any) int {
	n := 1
	switch c := v.(type) {
	case map[string]any:
		for _, e := range c {
			if n += jsonValues(e); n > maxCopied {
				return n
			}
		}
	case []any:
		for _, e := range c {
			if n += jsonValues(e); n > maxCopied {
				return n
			}
		}
	}
	return n
}

// jsonEqual reports whether two decoded JSON values are equal as RFC 6902's
// test has it: numbers by value, objects regardless of member order.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !jsonEqual(e, f) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && numberKey(string(x)) == numberKey(string(y))
	}
	return a == b
}

// numberKey writes a JSON number so that two are equal by value exactly
// when their keys are: its sign, its significant digits, and the exponent
// of the last one (1.50, 15e-1 and 0.15E1 are all "15e-1"; every zero is
// "0"). Nothing is computed from the exponent but a sum, so 1e1000000
// costs what its text does.
func numberKey(n string) string {
	sign := ""
	if strings.HasPrefix(n, "-") {
		sign, n = "-", n[1:]
	}
	mant, exp, _ := strings.Cut(strings.ToLower(n), "e")
	whole, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return "0"
	}
	e, ok := new(big.Int).SetString(strings.TrimPrefix(exp, "+"), 10)
	if !ok {
		e = new(big.Int) // no exponent
	}
	trimmed := strings.TrimRight(digits, "0")
	e.Add(e, big.NewInt(int64(len(digits)-len(trimmed)-len(frac))))
	return sign + trimmed + "e" + e.String()
}

// pointer reports whether p is a JSON Pointer (RFC 6901): empty, or
// segments each after a "/", with "~" only as "~0" or "~1".
func pointer(p string) bool {
	if p != "" && p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || p[i+1] != '0' && p[i+1] != '1') {
			return false
		}
	}
	return true
}

// Unescape decodes a JSON Pointer's reference token (RFC 6901 §4: ~1 is
// /, ~0 is ~, in that order).
func Unescape(token string) string { return unescapePointer.Replace(token) }

var unescapePointer = strings.NewReplacer("~1", "/", "~0", "~")
