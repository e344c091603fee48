package audit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
)

// slowLog is a BatchSink that can be made slow or failing.
type slowLog struct {
	mu      sync.Mutex
	n       int
	batches int
	delay   time.Duration
	fail    atomic.Int32 // fail this many writes first
	release chan struct{}
}

func (s *slowLog) RecordBatch(_ context.Context, evs []audit.Event) error {
	if s.release != nil {
		<-s.release
	}
	time.Sleep(s.delay)
	if s.fail.Load() > 0 {
		s.fail.Add(-1)
		return errors.New("database unavailable")
	}
	s.mu.Lock()
	s.n += len(evs)
	s.batches++
	s.mu.Unlock()
	return nil
}

func TestAsyncBurstNeitherDropsNorDeadlocks(t *testing.T) {
	sink := &slowLog{delay: time.Millisecond}
	sink.fail.Store(3)
	var errs atomic.Int32
	a := &audit.Async{Next: sink, QueueSize: 64, BatchSize: 32, FlushInterval: 5 * time.Millisecond,
		OnError: func(error) { errs.Add(1) }}
	ctx := context.Background()
	go func() { _ = a.Run(ctx) }()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if err := a.Record(ctx, audit.Event{Type: audit.ResourceAllowed, ClientID: string(rune('a' + w)), Interaction: string(rune(i))}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sink.n != 4000 || errs.Load() != 3 {
		t.Fatalf("written %d of 4000 events, %d failed writes reported (want 3)", sink.n, errs.Load())
	}
	if sink.batches >= 4000 {
		t.Fatal("events were not batched")
	}
	if err := a.Record(ctx, audit.Event{}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestAsyncOverflowPolicies(t *testing.T) {
	ctx := context.Background()
	sink := &slowLog{release: make(chan struct{})}
	a := &audit.Async{Next: sink, QueueSize: 4, BatchSize: 1, Overflow: audit.Fail}
	go func() { _ = a.Run(ctx) }()
	var full int
	for range 20 {
		if err := a.Record(ctx, audit.Event{}); errors.Is(err, audit.ErrQueueFull) {
			full++
		}
	}
	if full == 0 {
		t.Fatal("the Fail policy never refused with a stuck writer")
	}
	close(sink.release)
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sink.n != 20-full {
		t.Fatalf("accepted %d, written %d", 20-full, sink.n)
	}

	stuck := &slowLog{release: make(chan struct{})}
	b := &audit.Async{Next: stuck, QueueSize: 2, BatchSize: 1, Overflow: audit.Block}
	go func() { _ = b.Run(ctx) }()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	var blocked error
	for range 10 {
		if err := b.Record(tctx, audit.Event{}); err != nil {
			blocked = err
			break
		}
	}
	if !errors.Is(blocked, context.DeadlineExceeded) {
		t.Fatalf("the Block policy did not block: %v", blocked)
	}
	close(stuck.release)
	_ = b.Close(ctx)
}

type discard struct{}

func (discard) RecordBatch(context.Context, []audit.Event) error { return nil }

var benchEvent = audit.Event{Time: time.Unix(1, 0), Tenant: "t", Type: audit.ResourceAllowed, Outcome: audit.Success,
	ClientID: "app", UserID: "dr", Patient: "123", Scopes: "patient/*.rs", Interaction: "read", Resource: "Observation/9", TokenID: "jti"}

// BenchmarkAsyncRecord is the caller's cost of an event through Async.
func BenchmarkAsyncRecord(b *testing.B) {
	a := &audit.Async{Next: discard{}, QueueSize: 1 << 16}
	ctx := context.Background()
	go func() { _ = a.Run(ctx) }()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Record(ctx, benchEvent); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = a.Close(ctx)
}

// BenchmarkBaselineChannelSend is the floor of any queueing sink: a send
// of the same event on a buffered channel drained by another goroutine.
func BenchmarkBaselineChannelSend(b *testing.B) {
	ch := make(chan audit.Event, 1<<16)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	for b.Loop() {
		ch <- benchEvent
	}
	b.StopTimer()
	close(ch)
	<-done
}

// TestAsyncWritesWhenABatchFills: a full batch is written at once, long
// before the flush interval; a partial one waits for it or for Close.
func TestAsyncWritesWhenABatchFills(t *testing.T) {
	log := &slowLog{}
	a := &audit.Async{Next: log, BatchSize: 4, FlushInterval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	written := func() int {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.n
	}
	for i := range 3 {
		if err := a.Record(ctx, audit.Event{Type: audit.ResourceAllowed, ClientID: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := written(); n != 0 {
		t.Fatalf("a partial batch was written before the interval: %d", n)
	}
	_ = a.Record(ctx, audit.Event{Type: audit.ResourceAllowed, ClientID: "d"})
	deadline := time.Now().Add(5 * time.Second)
	for written() != 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := written(); n != 4 {
		t.Fatalf("a full batch was not written: %d", n)
	}
	_ = a.Record(ctx, audit.Event{Type: audit.ResourceAllowed, ClientID: "e"})
	if err := a.Close(ctx); err != nil || written() != 5 {
		t.Fatalf("Close left events unwritten: %v, %d written", err, written())
	}
}
