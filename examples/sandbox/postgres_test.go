package main

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/randid"
)

// TestSandboxOnPostgreSQL runs the sandbox with -db postgres://… (in a fresh
// schema of SMARTKIT_POSTGRES_DSN): a launch works, and a restart on the same
// database and data directory keeps the apps, the grants and an unbroken
// audit chain.
func TestSandboxOnPostgreSQL(t *testing.T) {
	base := os.Getenv("SMARTKIT_POSTGRES_DSN")
	if base == "" {
		t.Skip("SMARTKIT_POSTGRES_DSN is not set (.ci/run sets it)")
	}
	schema := "sb_" + strings.ToLower(strings.ReplaceAll(randid.New()[:16], "-", "_"))
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	cfg := Config{Addr: "127.0.0.1:0", Data: t.TempDir(), DB: u.String(), DemoPassword: "pw", Patients: 50}

	sb, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, sb, "patient")
	if _, page := b.visit(sb.URL + "/app/launch?iss=" + url.QueryEscape(sb.FHIRBase)); !strings.Contains(page, `id="patient-name"`) {
		t.Fatalf("launch on PostgreSQL:\n%s", page)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}

	sb, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart on the same database: %v", err)
	}
	defer sb.Close()
	ctx := context.Background()
	grants, err := sb.Consent.Store.ByUser(ctx, "", "patient")
	if err != nil || len(grants) != 1 {
		t.Fatalf("grants after the restart: %d %v", len(grants), err)
	}
	apps, err := sb.Store.Registry().List(ctx, "")
	if err != nil || len(apps) != 2 {
		t.Fatalf("apps after the restart: %d %v (the bundled apps must not be registered twice)", len(apps), err)
	}
	rs, err := sb.AuditLog.Records(ctx, "", 0, 0)
	if err != nil || len(rs) < 5 {
		t.Fatalf("audit after the restart: %d records, %v", len(rs), err)
	}
	if err := audit.VerifyChain(rs, "", 0); err != nil {
		t.Fatalf("audit chain across the restart: %v", err)
	}
}
