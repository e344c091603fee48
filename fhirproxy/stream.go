package fhirproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// A Bundle larger than Limits.StreamFrom is filtered as it passes: each
// entry is read, judged and written (or left out) before the next is read,
// so the proxy holds about one entry at a time instead of the whole body.
// Its resourceType must come before its entries, unless the interaction
// always answers with a Bundle (a search, a type or system history): some
// servers write members in name order, "entry" first; the stream then says
// Bundle itself and is cut if the resourceType, when it comes, says
// otherwise.
// The status and headers go out before the end of the Bundle is seen; if
// the rest turns out to be invalid JSON, the response is cut off (the
// client sees a truncated body, never an unchecked entry). Because a total
// and a meta cannot be known to be right until every entry has been
// judged, a streamed Bundle carries them after its entries.

// errStop ends a scan early on purpose.
var errStop = errors.New("fhirproxy: stop")

// errNotBundle cuts a stream whose resourceType is not Bundle.
var errNotBundle = errors.New("fhirproxy: the streamed answer is not a Bundle")

// bundleHead reads a body's head up to its resourceType or its entries,
// whichever comes first: bundle reports a resourceType of Bundle before any
// entry; entryFirst, entries before any resourceType.
func bundleHead(head []byte) (bundle, entryFirst bool) {
	s := jsonstrict.NewScanner(head)
	err := s.Object(func(name []byte) error {
		switch string(name) {
		case "resourceType":
			v, err := s.String()
			bundle = err == nil && string(v) == "Bundle"
			if err == nil {
				err = errStop
			}
			return err
		case "entry":
			entryFirst = true
			return errStop
		}
		return s.Skip()
	})
	if err != errStop {
		return false, false
	}
	return bundle, entryFirst
}

// alwaysBundle reports whether an interaction of kind k always answers
// (when it succeeds) with a Bundle.
func alwaysBundle(k Kind) bool {
	switch k {
	case SearchType, SearchCompart, SearchSystem, HistoryInstance, HistoryType, HistorySystem:
		return true
	}
	return false
}

// streamer writes a filtered Bundle while it reads it.
type streamer struct {
	s   *jsonstrict.Scanner
	w   *bufio.Writer
	a   *access
	typ string // the type searched, which its page links continue
	// assumed: the answer must be a Bundle (alwaysBundle), and its entries
	// may come before its resourceType.
	assumed bool
	wrote   bool // a member has been written: the next needs a comma
	// sent counts entries written, and matches those of them a total
	// counts; removed and withheld say whether any was left out, for its
	// labels in the second case.
	sent, matches     int
	removed, withheld bool
	removedMatch      bool     // a removed entry a total counts (not an include)
	total, meta       []byte   // held back until every entry is judged
	next              bool     // the Bundle links to a next page
	labels            []string // of the entries sent, for the audit trail
	// who collects the patients of the entries sent (Patient, Patients),
	// for the audit trail.
	who audit.Event
	d   disclosure
	// keys are the records sent so far (with patient context, the
	// patient's), by Type/id, when the search may bring Provenances
	// (access.provenances): one goes after the records it is about
	// (access.provenanceKept) or, without patient context, by reading them
	// (access.targets), as in a whole Bundle (inspectBody).
	keys map[string]bool
	// inc: the records sent and removed so far, by which included ones
	// are judged (access.includes), as in a whole Bundle.
	inc inclusion
}

// newStreamer filters what s reads into w for the access a; assumed is
// set for a search's answer (entries may come before the resourceType),
// and patient is the patient the request's audit event names already.
func newStreamer(s *jsonstrict.Scanner, w *bufio.Writer, a *access, assumed bool, patient string) *streamer {
	st := &streamer{s: s, w: w, a: a, assumed: assumed, inc: inclusion{specs: a.includeSpecs}}
	st.who.Patient = patient
	st.d = disclosure{ev: &st.who, a: a}
	return st
}

func (st *streamer) sep() {
	if st.wrote {
		_ = st.w.WriteByte(',')
	}
	st.wrote = true
}

// run filters the whole Bundle; an error means the output is incomplete.
func (st *streamer) run() error {
	s := st.s
	var top projection
	_ = st.w.WriteByte('{')
	if st.assumed {
		_, _ = st.w.WriteString(`"resourceType":"Bundle"`)
		st.wrote = true
	}
	err := top.decode(s, func() error {
		if top.ResourceType != "Bundle" && (!st.assumed || top.ResourceType != "") {
			return errors.New("fhirproxy: entries before the resource type")
		}
		return readEntries(s, st.a.relink, st.entry)()
	}, func(name string, start int64) error {
		// The member is written as it came (raw nil), or replaced (raw),
		// unless it is held back or already written (skip). Its bytes are
		// read only then: an entry member's were released entry by entry.
		var raw []byte
		skip := false
		switch name {
		case "resourceType":
			if top.ResourceType != "Bundle" {
				return errNotBundle
			}
			skip = st.assumed // written at the start
		case "entry":
			if st.sent > 0 {
				_ = st.w.WriteByte(']')
			}
			skip = st.sent > 0 || st.removed // else empty or null as it came
		case "total":
			st.total, skip = bytes.Clone(s.Bytes(start, s.Offset())), true
		case "meta":
			st.meta, skip = bytes.Clone(s.Bytes(start, s.Offset())), true
		case "link":
			st.next = st.next || nextLink(s.Bytes(start, s.Offset()))
			if st.a.relink != nil {
				raw = st.a.relink.member(s.Bytes(start, s.Offset()), st.a, st.typ)
			}
		}
		if !skip {
			if raw == nil {
				raw = s.Bytes(start, s.Offset())
			}
			st.sep()
			if _, err := st.w.Write(raw); err != nil {
				return err
			}
		}
		s.Release(s.Offset())
		return nil
	})
	if err == nil {
		err = s.End()
	}
	if err == nil && top.ResourceType != "Bundle" {
		err = errNotBundle
	}
	if err != nil {
		return err
	}
	f := pageFacts{total: st.total != nil, next: st.next, meta: st.meta != nil, matches: st.matches}
	f.n, f.totalOK = memberInt(st.total)
	keepTotal, keepMeta := f.goes(st.a, st.removed, st.removedMatch)
	if st.total != nil && keepTotal {
		st.sep()
		_, _ = st.w.Write(st.total)
	}
	switch {
	case st.withheld:
		st.sep()
		_, _ = st.w.WriteString(redacted)
	case st.meta != nil && keepMeta:
		st.sep()
		_, _ = st.w.Write(st.meta)
	}
	_ = st.w.WriteByte('}')
	return st.w.Flush()
}

// entry judges one entry and writes it if the access may see it.
func (st *streamer) entry(e bundleEntry) error {
	send := true
	if e.hasRes && e.res.ResourceType != "OperationOutcome" {
		raw := st.s.Bytes(e.resStart, e.resEnd)
		v := st.a.judgeInBundle(&e, raw, st.keys, true) // as a whole Bundle's (inspectBody)
		if st.a.includes && v == keep && e.notMatch && st.inc.betrays(st.a, &e.res, raw) {
			v = drop // included because of a match removed (includes.go)
		}
		if st.a.includes {
			st.inc.noteEntry(st.a, &e, raw, v == keep)
		}
		switch {
		case v == keep:
			st.keys = st.a.remember(st.keys, &e.res)
		case v == withhold:
			send, st.removed, st.withheld = false, true, true
		default:
			send, st.removed = false, true
		}
		st.removedMatch = st.removedMatch || !send && !e.notMatch
	}
	if send {
		if st.sent == 0 {
			st.sep()
			_, _ = st.w.WriteString(`"entry":[`)
		} else {
			_ = st.w.WriteByte(',')
		}
		raw := st.s.Bytes(e.start, e.end)
		st.a.hushes(&e) // the server's words, withheld
		if e.moved() {
			raw = appendEntry(nil, raw, &e)
		}
		if _, err := st.w.Write(raw); err != nil {
			return err // the client has gone
		}
		if e.hasRes {
			st.labels = addLabels(st.labels, &e.res)
			st.d.add(&e.res)
		}
		st.sent++
		if !e.notMatch {
			st.matches++
		}
	}
	st.s.Release(e.end)
	return nil
}

// stream replaces a response's body with the filtered stream of its
// Bundle, whose first bytes (head) were already read. The event is
// recorded by the caller before anything is sent; a second one follows
// when entries were left out, the stream was cut, or labelled entries went
// out (it lists their labels).
func (p *Proxy) stream(ctx context.Context, resp *http.Response, head []byte, a *access, typ string, assumed bool, ev *audit.Event) {
	ev.Reason = "Bundle streamed: entries judged as they pass"
	own := *a // the goroutine may outlive the exchange, whose access is reused
	own.owners = maps.Clone(own.owners)
	p.readTargets(ctx, &own)
	first := *ev
	var st *streamer
	p.pipeBody(ctx, resp, fhirJSON, func(upstream io.Reader, w io.Writer) error {
		st = newStreamer(jsonstrict.NewStreamScanner(io.MultiReader(bytes.NewReader(head), upstream), int(min(p.Limits.resp(), 1<<30))),
			bufio.NewWriterSize(w, 32<<10), &own, assumed, first.Patient)
		st.typ = typ
		return st.run()
	}, func(err error, read bool) *audit.Event {
		named := st.who.Patient != first.Patient || len(st.who.Patients) > 0
		if err == nil && !st.removed && len(st.labels) == 0 && !named {
			return nil
		}
		after := first
		after.Labels, after.Patient, after.Patients = st.labels, st.who.Patient, st.who.Patients
		switch {
		case errors.Is(err, io.ErrClosedPipe) && !read:
			after.Reason = "streamed Bundle: refused before anything was sent"
		case errors.Is(err, io.ErrClosedPipe):
			after.Reason = "streamed Bundle: the client stopped reading after " + strconv.Itoa(st.sent) + " entries"
		case err != nil:
			after.Type, after.Outcome = audit.ResourceRefused, audit.Failure
			after.Reason = "streamed Bundle cut after " + strconv.Itoa(st.sent) + " entries: " + streamFailure(err)
		case st.removed:
			after.Reason = "streamed Bundle: entries withheld from the response"
			unconstrainedServer(&after, &own)
		case len(st.labels) > 0:
			after.Reason = "streamed Bundle: labelled entries disclosed"
		default:
			after.Reason = "streamed Bundle: the patients whose records went out"
		}
		return &after
	})
}

// pipeBody replaces a response's body with what fill writes as it reads
// the upstream's, in a goroutine (which may outlive the exchange); the
// upstream's body is closed when fill returns, and the answer ends there,
// cut if fill failed. done then says, from fill's error and whether the
// client read anything, what to record of how it ended (nil: nothing).
func (p *Proxy) pipeBody(ctx context.Context, resp *http.Response, contentType []string,
	fill func(upstream io.Reader, w io.Writer) error, done func(err error, read bool) *audit.Event) {
	upstream := resp.Body
	pr, pw := io.Pipe()
	out := &streamBody{PipeReader: pr}
	go func() {
		err := fill(upstream, pw)
		upstream.Close()
		pw.CloseWithError(err)
		if ev := done(err, out.read.Load()); ev != nil {
			if err := p.record(context.WithoutCancel(ctx), ev); err != nil {
				p.logger().ErrorContext(ctx, "fhirproxy: a streamed response's outcome could not be audited", "err", err)
			}
		}
	}()
	resp.Body, resp.ContentLength = out, -1
	delete(resp.Header, "Content-Length")
	resp.Header["Content-Type"] = contentType
}

// streamBody is the filtered stream as ReverseProxy reads it; it notes
// whether anything was read, for the audit trail.
type streamBody struct {
	*io.PipeReader
	read atomic.Bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.PipeReader.Read(p)
}

// streamFailure names why a stream was cut without quoting the content.
func streamFailure(err error) string {
	switch {
	case errors.Is(err, jsonstrict.ErrTooLarge):
		return "an entry is larger than the proxy holds"
	case errors.Is(err, jsonstrict.ErrInvalid):
		return "the FHIR server sent invalid or ambiguous JSON"
	case errors.Is(err, errNotBundle):
		return "the FHIR server's answer is not a Bundle"
	}
	return "the FHIR server's response failed"
}
