package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// A Record is a stored event: its place in its tenant's log and the hash
// chain that makes edits and deletions evident.
type Record struct {
	Seq   int64  // 1, 2, 3, … per tenant, without gaps
	Prev  string // Hash of the tenant's previous record ("" for the first)
	Hash  string // SHA-256 over Seq, Prev and the event
	Event Event
}

// Link computes the record that follows prev (nil for the first of a tenant).
func Link(prev *Record, e Event) Record {
	r := Record{Seq: 1, Event: e}
	if prev != nil {
		r.Seq, r.Prev = prev.Seq+1, prev.Hash
	}
	r.Hash = hashOf(r)
	return r
}

func hashOf(r Record) string {
	body, _ := json.Marshal(r.Event) // encoding/json sorts nothing but field order is fixed by the struct
	h := sha256.New()
	h.Write([]byte("smartkit audit v1\x00"))
	h.Write([]byte(strconv.FormatInt(r.Seq, 10)))
	h.Write([]byte{0})
	h.Write([]byte(r.Prev))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// A BrokenChainError names the first record at which a tenant's chain
// breaks, and how.
type BrokenChainError struct {
	Seq    int64
	Reason string
}

func (e *BrokenChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at record %d: %s", e.Seq, e.Reason)
}

// VerifyChain checks one tenant's records, in order, from the start of the
// log (or from a record whose predecessor's hash is anchor): each record's
// hash matches its content (no edit), and each links to the one before with
// the next sequence number (no deletion, insertion or reordering).
func VerifyChain(records []Record, anchor string, anchorSeq int64) error {
	prevHash, prevSeq := anchor, anchorSeq
	for _, r := range records {
		switch {
		case r.Seq != prevSeq+1:
			return &BrokenChainError{Seq: prevSeq + 1, Reason: fmt.Sprintf("record missing (next present is %d)", r.Seq)}
		case r.Prev != prevHash:
			return &BrokenChainError{Seq: r.Seq, Reason: "does not link to the previous record"}
		case hashOf(r) != r.Hash:
			return &BrokenChainError{Seq: r.Seq, Reason: "content does not match its hash (edited)"}
		}
		prevHash, prevSeq = r.Hash, r.Seq
	}
	return nil
}
