package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

// TestDiscoveryStaysOnItsOrigin: the discovery document names where the
// app sends its users and its credentials, so it is taken only from the
// FHIR server's own origin: a redirect there (a document moved) is
// followed, one to another host is not, and that host hears nothing (found
// by probing: discovery followed any redirect, so a redirect on the FHIR
// server's host could hand the app another authorization server).
func TestDiscoveryStaysOnItsOrigin(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	other, reached := collector(t)
	well := ehr.FHIRBase + "/.well-known/smart-configuration"
	var target string
	w := &wire{next: ehr.Client().Transport, answer: func(r *http.Request) *http.Response {
		if r.URL.String() == well && target != "" {
			return redirect(r, http.StatusFound, target)
		}
		return nil
	}}
	hc := &http.Client{Transport: w}
	target = well + "?moved=1"
	if cfg, err := client.Discover(context.Background(), hc, ehr.FHIRBase); err != nil || cfg.TokenEndpoint == "" {
		t.Errorf("a redirect on the same origin: %v", err)
	}
	for _, target = range []string{other.URL + "/.well-known/smart-configuration",
		strings.Replace(well, "127.0.0.1", "localhost", 1)} { // the same machine, by another name
		_, err := client.Discover(context.Background(), hc, ehr.FHIRBase)
		if !errors.Is(err, client.ErrDiscovery) {
			t.Errorf("a redirect to %s: %v", target, err)
		}
	}
	if got := reached(); len(got) != 0 {
		t.Errorf("discovery reached another server: %q", got)
	}
}
