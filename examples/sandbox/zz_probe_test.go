package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
)

func TestZZProbe(t *testing.T) {
	sb := startSandbox(t)
	mint := func(g smart.Grant) string {
		g.ClientID, g.Audience = ExampleAppID, sb.FHIRBase
		tok, err := sb.Auth.Mint(context.Background(), "", g, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cl := mint(smart.Grant{UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.rs", Clearance: everyLabel()})
	for i, u := range []string{
		"/Observation?category=laboratory&_elements=code&_count=6",
		"/Observation?category=laboratory&_summary=text&_count=6",
		"/Observation?category=laboratory&_summary=true&_count=6",
		"/Encounter?_count=4&_revinclude=Observation:encounter",
		"/Encounter?_count=4&_elements=status&_revinclude=Observation:encounter",
		"/Provenance?_count=4",
		"/Provenance?_count=4&_elements=recorded",
		"/Observation/pt-001-lab-000?_elements=code",
		"/Observation/pt-001-lab-000?_summary=text",
		"/Appointment?_count=4",
		"/Appointment?_count=4&_summary=true",
		"/Device?_count=6", "/Observation?patient=pt-001&_summary=text&_count=3", "/Observation?_summary=text&_count=3&_type=x", "/Encounter?_count=2&_elements=status&_include=Encounter:patient",
		"/DocumentReference?_count=4&_elements=status",
	} {
		tag := "zz" + string(rune('a'+i))
		resp := callWith(t, cl, http.MethodGet, sb.FHIRBase+u, "", "X-Request-Id", tag)
		var b strings.Builder
		buf := make([]byte, 1<<20)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		resp.Body.Close()
		time.Sleep(150 * time.Millisecond)
		p, _ := sb.AuditLog.Query(context.Background(), audit.Query{UserID: "clinician", Limit: 1})
		ev := p.Records[0].Event
		pts := map[string]bool{}
		for _, x := range []string{"pt-001", "pt-002", "pt-long", "pt-sensitive"} {
			if strings.Contains(b.String(), x) {
				pts[x] = true
			}
		}
		t.Logf("%s %d: audit Patient=%q Patients=%v labels=%v | body mentions %v", u, resp.StatusCode, ev.Patient, ev.Patients, len(ev.Labels), pts)
	}
}
