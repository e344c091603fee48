package balp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/audit/balp"
	"github.com/smartkit/smartkit/fhirproxy"
)

var allTypes = []audit.Type{audit.LaunchMinted, audit.AuthorizeAllowed, audit.AuthorizeRefused, audit.ConsentGranted, audit.ConsentRefused,
	audit.ConsentRevoked, audit.CodeIssued, audit.CodeReuse, audit.TokenIssued, audit.TokenRefused, audit.TokenRefreshed, audit.RefreshReuse,
	audit.TokenRevoked, audit.GrantRevoked, audit.Introspection, audit.ClientAuthFailed, audit.AssertionReplay, audit.ResourceAllowed,
	audit.ResourceRefused, audit.AppTransition, audit.PolicyChanged, audit.TokenVerifyFailed, audit.AuditRead}

func TestEveryEventTypeExportsValidFHIR(t *testing.T) {
	o := balp.Options{Observer: "node-1", Server: "https://ehr.example/fhir"}
	for _, ty := range allTypes {
		for _, interaction := range []string{"read", "search", "create", "update", "delete", "operation"} {
			e := audit.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Tenant: "t1", Type: ty, Outcome: audit.Success,
				ClientID: "app", UserID: "dr", FHIRUser: "Practitioner/9", Patient: "123", Scopes: "patient/*.rs",
				Interaction: interaction, Resource: "Observation/7", TokenID: "jti-1", GrantID: "g1", ConsentID: "c1",
				RequestID: "req-1", SourceIP: "10.0.0.1"}
			if ty == audit.ResourceRefused {
				e.Outcome, e.Severity, e.Reason = audit.Failure, audit.Security, "insufficient_scope"
			}
			b, err := balp.Export(audit.Record{Seq: 7, Event: e}, o)
			if err != nil {
				t.Fatalf("%s/%s: %v\n%s", ty, interaction, err, b)
			}
			if ty == audit.ResourceAllowed && interaction == "read" {
				s := string(b)
				for _, want := range []string{"IHE.BasicAudit.PatientRead", `"urn:ietf:params:oauth:jti:jti-1"`, `"Patient/123"`, `"action":"R"`} {
					if !strings.Contains(s, want) {
						t.Errorf("read event lacks %s:\n%s", want, s)
					}
				}
			}
			if ty == audit.ResourceRefused && !strings.Contains(string(b), `"outcome":"8"`) {
				t.Errorf("a security refusal is not outcome 8: %s", b)
			}
		}
	}
}

// TestDisclosedLabels: the labels of what a request disclosed go on the
// data entity as securityLabel, and the AuditEvent is valid R4.
func TestDisclosedLabels(t *testing.T) {
	e := audit.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Type: audit.ResourceAllowed, Outcome: audit.Success,
		ClientID: "app", Patient: "123", Interaction: "search", Labels: []string{
			"http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", "http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV"}}
	b, err := balp.Export(audit.Record{Seq: 1, Event: e}, balp.Options{Observer: "node-1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !strings.Contains(string(b), `"securityLabel":[{"code":"R","system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality"},{"code":"HIV"`) {
		t.Errorf("no securityLabel: %s", b)
	}
}

// TestEveryPatientDisclosed: each patient whose records a search disclosed
// is an entity of the AuditEvent, as the patient in context is.
func TestEveryPatientDisclosed(t *testing.T) {
	e := audit.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Type: audit.ResourceAllowed, Outcome: audit.Success,
		ClientID: "research", Patient: "123", Patients: []string{"456", "789"}, Interaction: "search", Resource: "Observation"}
	if patients, b := entities(t, e, "1"); !slices.Equal(patients, []string{"Patient/123", "Patient/456", "Patient/789"}) {
		t.Errorf("patient entities %v: %s", patients, b)
	}
}

// TestBatchEntriesNamed: what the entries of a batch name are entities of
// its AuditEvent, a record by its reference, a type alone (a create's, a
// search's) as the reference's type; and the AuditEvent is valid FHIR.
func TestBatchEntriesNamed(t *testing.T) {
	e := audit.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Type: audit.ResourceAllowed, Outcome: audit.Success,
		ClientID: "device-app", Patient: "123", Interaction: "batch", Resources: []string{"Observation", "Observation/9", "Patient/123"}}
	named, b := entities(t, e, "4")
	if !slices.Equal(named, []string{"Observation", "Observation/9", "Patient/123"}) {
		t.Errorf("entry entities %v: %s", named, b)
	}
	if !strings.Contains(string(b), `"what":{"type":"Observation"}`) {
		t.Errorf("a create's entity: %s", b)
	}
}

// entities exports e (Export validates it) and returns what its entities
// of the role name (a reference, or a type alone), and the export.
func entities(t *testing.T, e audit.Event, role string) ([]string, []byte) {
	t.Helper()
	b, err := balp.Export(audit.Record{Seq: 1, Event: e}, balp.Options{Observer: "node-1"})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var ae struct {
		Entity []struct {
			What struct{ Reference, Type string }
			Role struct{ Code string }
		}
	}
	if err := json.Unmarshal(b, &ae); err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, en := range ae.Entity {
		if en.Role.Code == role {
			named = append(named, en.What.Reference+en.What.Type)
		}
	}
	return named, b
}

func TestBundle(t *testing.T) {
	l := &audit.MemoryLog{}
	for i := range 5 {
		_ = l.Record(context.Background(), audit.Event{Time: time.Unix(int64(i), 0), Type: audit.TokenIssued, Outcome: audit.Success, ClientID: "a"})
	}
	p, _ := l.Query(context.Background(), audit.Query{})
	b, err := balp.Bundle(p.Records, balp.Options{Observer: "n"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["total"].(float64) != 5 || len(m["entry"].([]any)) != 5 {
		t.Fatalf("bundle %s", b)
	}
	if strings.Contains(string(b), "eyJ") {
		t.Fatal("token material in the export")
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, bad := range []string{
		`{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2026-01-01T00:00:00Z","outcome":"5","agent":[{"requestor":true}],"source":{"observer":{"display":"n"}}}`,
		`{"resourceType":"AuditEvent","recorded":"yesterday"}`,
	} {
		if balp.Validate([]byte(bad)) == nil {
			t.Errorf("Validate accepted %s", bad)
		}
	}
}

// TestRestfulSubtypes: every interaction fhirproxy audits exports with a
// code of R4's restful-interaction code system; one the code does not
// name exactly (a compartment search, a bulk export's status or file) is
// named again in smartkit's.
func TestRestfulSubtypes(t *testing.T) {
	r4 := []string{"read", "vread", "update", "patch", "delete", "history", "history-instance", "history-type", "history-system",
		"create", "search", "search-type", "search-system", "capabilities", "transaction", "batch", "operation"}
	for _, k := range []fhirproxy.Kind{fhirproxy.Read, fhirproxy.VRead, fhirproxy.SearchType, fhirproxy.SearchCompart, fhirproxy.SearchSystem,
		fhirproxy.HistoryInstance, fhirproxy.HistoryType, fhirproxy.HistorySystem, fhirproxy.Create, fhirproxy.Update, fhirproxy.Patch,
		fhirproxy.Delete, fhirproxy.Operation, fhirproxy.Batch, fhirproxy.Capabilities, fhirproxy.ExportStatus, fhirproxy.ExportFile} {
		e := audit.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Type: audit.ResourceAllowed, Outcome: audit.Success,
			ClientID: "job", Scopes: "system/*.rs", Interaction: string(k), Resource: "Observation"}
		b, err := balp.Export(audit.Record{Seq: 1, Event: e}, balp.Options{Observer: "node-1"})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		var ae struct {
			Subtype []struct{ System, Code string }
		}
		_ = json.Unmarshal(b, &ae)
		if len(ae.Subtype) == 0 || ae.Subtype[0].System != balp.Restful || !slices.Contains(r4, ae.Subtype[0].Code) {
			t.Errorf("%s: subtype %+v", k, ae.Subtype)
			continue
		}
		if exact := ae.Subtype[0].Code == string(k); exact != (len(ae.Subtype) == 1) ||
			!exact && (ae.Subtype[1].System != balp.SmartkitEvent || ae.Subtype[1].Code != string(k)) {
			t.Errorf("%s: subtype %+v", k, ae.Subtype)
		}
	}
}
