package smart

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestThrottleSource(t *testing.T) {
	var th Throttle
	for _, c := range []struct{ remote, want string }{
		{"192.0.2.7:5000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5000", "192.0.2.7"},            // IPv4-mapped is the IPv4 host
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"}, // one host's /64
		{"[2001:db8:1:2:bbbb::9]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:80", "2001:db8:1:3::/64"},
		{"unix-socket", "unix-socket"},
	} {
		if got := th.source(&http.Request{RemoteAddr: c.remote}); got != c.want {
			t.Errorf("source(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}

// TestThrottleMemoryBound: sources without end keep at most MaxKeys
// buckets; refilled buckets go first, and a bucket still draining stays
// while there are refilled ones to drop.
func TestThrottleMemoryBound(t *testing.T) {
	th := &throttler{cfg: &Throttle{SourceFailures: 2, Window: time.Minute, MaxKeys: 50}}
	now := time.Now()
	if th.admit(now, keysOf("attacker", "app")) != nil {
		t.Fatal("refused at once")
	}
	th.settle(now, keysOf("attacker", "app"), true, false)
	for i := range 1000 {
		src := "s" + strconv.Itoa(i)
		if th.admit(now, keysOf(src, "app")) != nil {
			t.Fatal("fresh source refused")
		}
		th.settle(now, keysOf(src, "app"), false, false) // succeeded: its buckets are full again
		if n := len(th.buckets); n > 50 {
			t.Fatalf("%d buckets kept, bound 50", n)
		}
	}
	if b := th.buckets[keysOf("attacker", "app").source]; b == nil || b.left >= b.cap {
		t.Fatalf("the draining bucket was dropped before refilled ones: %+v", b)
	}

	// Sources that all keep failing: nothing is refilled, so arbitrary
	// buckets go, a tenth of the limit at a time (not one per new source).
	sweeps := 0
	for i := range 1000 {
		src := "f" + strconv.Itoa(i)
		before := len(th.buckets)
		if th.admit(now, keysOf(src, "app")) == nil {
			th.settle(now, keysOf(src, "app"), true, false)
		}
		if len(th.buckets) < before {
			sweeps++
		}
		if n := len(th.buckets); n > 50 {
			t.Fatalf("%d buckets kept, bound 50", n)
		}
	}
	if sweeps > 1000/2 { // one per new source, before
		t.Errorf("%d sweeps for 1000 new failing sources", sweeps)
	}
}
