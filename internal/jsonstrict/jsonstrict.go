package jsonstrict

import (
	"errors"
	"strconv"
)

// ErrInvalid is matched by every error Check and Scanner return for a text
// that breaks the rules.
var ErrInvalid = errors.New("jsonstrict: invalid JSON")

// ErrTooLarge is matched by the error a streaming Scanner returns when the
// bytes it must hold at once exceed its window limit.
var ErrTooLarge = errors.New("jsonstrict: value too large")

// DefaultMaxDepth is the nesting limit of Check and NewScanner.
const DefaultMaxDepth = 64

type checkError struct {
	off int64
	msg string
}

func (e *checkError) Error() string {
	return "jsonstrict: " + e.msg + " at offset " + strconv.FormatInt(e.off, 10)
}

func (e *checkError) Is(target error) bool { return target == ErrInvalid }

// Check validates b as a single JSON value with DefaultMaxDepth, refusing
// member names that repeat under case folding.
func Check(b []byte) error { return CheckDepth(b, DefaultMaxDepth) }

// CheckDepth is Check with a nesting limit of maxDepth.
func CheckDepth(b []byte, maxDepth int) error {
	s := Scanner{b: b, max: maxDepth, fold: true}
	if err := s.Skip(); err != nil {
		return err
	}
	return s.End()
}
