package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/smartkit/smartkit/scopes"
)

// An Alert is something a host should look at.
type Alert struct {
	Time     time.Time
	Tenant   string
	Kind     string // "volume", "scope-drift", "app-change"
	ClientID string
	Detail   string
}

// Detector is a Sink that watches events for what a security team alerts
// on: an app's access volume far above its own baseline, an app asking for
// scopes outside its approved set, and changes to an app's redirect URIs,
// keys or secrets. It never fails the event; alerts go to Alert.
type Detector struct {
	// Alert receives each alert; required.
	Alert func(ctx context.Context, a Alert)
	// Window is the volume window; 0 means one minute.
	Window time.Duration
	// Factor is how many times its baseline an app's window count must be
	// to alert; 0 means 5.
	Factor float64
	// MinCount is the least count that can alert; 0 means 100.
	MinCount int
	// Approved returns an app's approved scopes; nil disables scope-drift detection.
	Approved func(tenant, clientID string) (string, bool)

	mu   sync.Mutex
	apps map[string]*volume
}

type volume struct {
	start    time.Time
	count    int
	baseline float64 // EWMA of past windows
	windows  int
	alerted  bool
}

// Record inspects an event.
func (d *Detector) Record(ctx context.Context, e Event) error {
	switch e.Type {
	case ResourceAllowed, ResourceRefused:
		d.volume(ctx, e)
	case TokenIssued, CodeIssued:
		d.drift(ctx, e)
	case AppTransition:
		if r := strings.ToLower(e.Reason); strings.Contains(r, "metadata updated") || strings.Contains(r, "secret") {
			d.Alert(ctx, Alert{Time: e.Time, Tenant: e.Tenant, Kind: "app-change", ClientID: e.ClientID, Detail: e.Reason})
		}
	}
	return nil
}

func (d *Detector) volume(ctx context.Context, e Event) {
	window, factor, minCount := d.Window, d.Factor, d.MinCount
	if window <= 0 {
		window = time.Minute
	}
	if factor <= 0 {
		factor = 5
	}
	if minCount <= 0 {
		minCount = 100
	}
	key := e.Tenant + "\x00" + e.ClientID
	d.mu.Lock()
	if d.apps == nil {
		d.apps = map[string]*volume{}
	}
	v := d.apps[key]
	if v == nil {
		v = &volume{start: e.Time}
		d.apps[key] = v
	}
	for !e.Time.Before(v.start.Add(window)) { // close finished windows
		v.baseline = 0.7*v.baseline + 0.3*float64(v.count)
		if v.windows == 0 {
			v.baseline = float64(v.count)
		}
		v.windows++
		v.count, v.alerted = 0, false
		v.start = v.start.Add(window)
	}
	v.count++
	fire := v.windows >= 3 && !v.alerted && v.count >= minCount && float64(v.count) > factor*max(v.baseline, 1)
	if fire {
		v.alerted = true
	}
	count, base := v.count, v.baseline
	d.mu.Unlock()
	if fire {
		d.Alert(ctx, Alert{Time: e.Time, Tenant: e.Tenant, Kind: "volume", ClientID: e.ClientID,
			Detail: fmt.Sprintf("%d accesses this window against a baseline of %.0f", count, base)})
	}
}

func (d *Detector) drift(ctx context.Context, e Event) {
	if d.Approved == nil || e.Scopes == "" {
		return
	}
	approved, ok := d.Approved(e.Tenant, e.ClientID)
	if !ok {
		return
	}
	a, _ := scopes.ParseLenient(approved)
	got, _ := scopes.ParseLenient(e.Scopes)
	var outside []string
	for sc := range got.All() {
		if !a.Covers(sc) {
			outside = append(outside, sc.String())
		}
	}
	if len(outside) > 0 {
		d.Alert(ctx, Alert{Time: e.Time, Tenant: e.Tenant, Kind: "scope-drift", ClientID: e.ClientID,
			Detail: "granted outside the approved set: " + strings.Join(outside, " ")})
	}
}
