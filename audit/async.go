package audit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// A BatchSink records several events at once (the SQL log, a SIEM shipper).
type BatchSink interface {
	RecordBatch(ctx context.Context, events []Event) error
}

// Overflow is what an Async sink does when its queue is full.
type Overflow int

const (
	// Block makes Record wait for room (or for its context to end).
	Block Overflow = iota
	// Fail makes Record return ErrQueueFull at once, so the operation that
	// produced the event fails closed.
	Fail
)

// ErrQueueFull is returned by Async.Record under the Fail policy when the
// queue is full, and ErrClosed after Close.
var (
	ErrQueueFull = errors.New("audit: queue full")
	ErrClosed    = errors.New("audit: sink closed")
)

// Async puts a queue in front of a BatchSink: Record enqueues (well under a
// microsecond) and a background goroutine writes batches. It never drops an
// event: a full queue blocks or fails the caller (Overflow), and a failing
// write is retried with backoff while the queue holds further events back,
// so callers feel the pressure instead of losing evidence. Start it with
// Run; Close drains it.
type Async struct {
	Next          BatchSink
	QueueSize     int           // 0 means 4096
	BatchSize     int           // 0 means 256
	FlushInterval time.Duration // how long a partial batch waits; 0 means 50 ms
	Overflow      Overflow
	// OnError is told of each failed write before it is retried; nil logs nothing.
	OnError func(error)

	once  sync.Once
	queue chan Event
	kick  chan struct{} // wakes Run early: a batch is ready, or Close
	high  int64         // pending events at which Record kicks
	// pending counts events recorded and not yet written, queued or in
	// Run's batch.
	pending atomic.Int64
	mu      sync.RWMutex
	closed  bool
	done    chan struct{}
}

func (a *Async) init() {
	a.once.Do(func() {
		n := a.QueueSize
		if n <= 0 {
			n = 4096
		}
		a.queue = make(chan Event, n)
		a.kick = make(chan struct{}, 1)
		a.high = int64(min(a.batchSize(), max(n/2, 1)))
		a.done = make(chan struct{})
	})
}

// Record enqueues e according to the Overflow policy.
func (a *Async) Record(ctx context.Context, e Event) error {
	a.init()
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return ErrClosed
	}
	select {
	case a.queue <- e:
		// Run is not a receiver on the queue: an enqueue wakes nobody (a
		// goroutine wake-up per event would cost more than the rest of
		// Record); a full batch does.
		if a.pending.Add(1) >= a.high {
			a.wake()
		}
		return nil
	default:
	}
	a.wake()
	if a.Overflow == Fail {
		return ErrQueueFull
	}
	select {
	case a.queue <- e:
		a.pending.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Async) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Async) batchSize() int {
	if a.BatchSize <= 0 {
		return 256
	}
	return a.BatchSize
}

// Run writes batches until Close; run it in its own goroutine. ctx bounds
// the writes (a cancelled ctx stops retrying and returns its error with
// events still queued). It wakes when a batch is full or FlushInterval has
// passed, whichever is first, and writes what is queued.
func (a *Async) Run(ctx context.Context) error {
	a.init()
	defer close(a.done)
	size := a.batchSize()
	interval := a.FlushInterval
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	batch := make([]Event, 0, size)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	flush := func() error {
		for backoff := 10 * time.Millisecond; len(batch) > 0; backoff = min(2*backoff, 5*time.Second) {
			err := a.Next.RecordBatch(ctx, batch)
			if err == nil {
				a.pending.Add(-int64(len(batch)))
				batch = batch[:0]
				return nil
			}
			if a.OnError != nil {
				a.OnError(err)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	for {
		closed := false
	drain:
		for {
			select {
			case e, ok := <-a.queue:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, e)
				if len(batch) < size {
					continue
				}
				if err := flush(); err != nil {
					return err
				}
			default:
				break drain
			}
		}
		if closed {
			return flush()
		}
		select {
		case <-a.kick:
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
			timer.Reset(interval)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops accepting events and waits until Run has written every queued
// one (or ctx ends).
func (a *Async) Close(ctx context.Context) error {
	a.init()
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	a.wake()
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
