package fhirconsent_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/consent/fhirconsent"
)

func grant(status consent.Status) consent.Grant {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	g := consent.Grant{ID: "c1", ClientID: "growth", AppName: "Growth Chart", UserID: "pat", Patient: "123",
		Scope: "launch/patient patient/Observation.rs patient/Condition.cu", Status: status, PolicyURI: consent.PolicyBasicNormal,
		Clearance: consent.Clearance{MaxConfidentiality: consent.Normal, Tags: []string{"SEX"}},
		Created:   t0, Expires: t0.Add(90 * 24 * time.Hour)}
	if status == consent.Inactive {
		g.RevokedAt = t0.Add(time.Hour)
	}
	return g
}

func TestExportValidates(t *testing.T) {
	for _, st := range []consent.Status{consent.Active, consent.Inactive} {
		b, pb, err := fhirconsent.Export(grant(st), fhirconsent.Options{Issuer: "https://ehr.example/auth", Custodian: "Organization/hospital", Test: true})
		if err != nil {
			t.Fatalf("%s: %v\n%s", st, err, b)
		}
		if got := pb.GetStatus().GetValue().String(); !strings.EqualFold(got, string(st)) {
			t.Errorf("status %s, want %s", got, st)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		prov := m["provision"].(map[string]any)
		if len(prov["class"].([]any)) != 2 || len(prov["action"].([]any)) != 2 {
			t.Errorf("classes %v actions %v", prov["class"], prov["action"])
		}
		denies := prov["provision"].([]any)
		for _, d := range denies {
			if strings.Contains(string(mustJSON(d)), `"SEX"`) {
				t.Error("a released label is denied")
			}
		}
		if !strings.Contains(string(b), `"PSY"`) || !strings.Contains(string(b), `"42CFRPart2"`) || !strings.Contains(string(b), "HTEST") {
			t.Errorf("export lacks the withheld labels or the test tag: %s", b)
		}
		if st == consent.Inactive && !strings.Contains(string(b), "2026-03-01T10:00:00Z") {
			t.Error("the period of a revoked consent does not end at revocation")
		}
	}
}

func TestValidateRefusesInvalid(t *testing.T) {
	for _, bad := range []string{`{"resourceType":"Consent","status":"maybe"}`, `{"resourceType":"Patient","id":"1"}`, `{`} {
		if _, err := fhirconsent.Validate([]byte(bad)); err == nil {
			t.Errorf("Validate(%s) accepted", bad)
		}
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
