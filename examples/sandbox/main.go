// Command sandbox runs a whole SMART on FHIR platform on one command: the
// authorization server, a FHIR R4 server over deterministic synthetic
// patients behind the policy proxy, an EHR shell that launches apps, open
// dynamic registration, and the example app, on SQLite (or PostgreSQL).
//
//	go run ./examples/sandbox
//	go run ./examples/sandbox -addr 127.0.0.1:9000 -db postgres://postgres@127.0.0.1:5432/test
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var cfg Config
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address; the FHIR base (iss) is http://{addr}/fhir")
	flag.StringVar(&cfg.Data, "data", "sandbox-data", "data directory: SQLite database, signing keys, cookie secret")
	flag.StringVar(&cfg.DB, "db", "", "database DSN (postgres://… for PostgreSQL); default the SQLite file in -data")
	flag.StringVar(&cfg.DemoPassword, "demo-password", "smartkit", "password of every demo user")
	flag.DurationVar(&cfg.TokenTTL, "token-ttl", 0, "access token lifetime (0: the server default, 15m)")
	flag.DurationVar(&cfg.CodeTTL, "code-ttl", 0, "authorization code lifetime (default 60s)")
	flag.IntVar(&cfg.Patients, "patients", 50, "ordinary synthetic patients, besides the awkward cases")
	flag.BoolVar(&cfg.ExportStorage, "export-storage", false, "write bulk export files to an object store at another address (pre-signed URLs, as Azure's FHIR service writes to a storage account); the proxy follows them there")
	flag.Parse()
	cfg.Log = os.Stdout
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sb, err := Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
	fmt.Printf("  ready in %v; Ctrl-C stops it\n", time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	if err := sb.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
}
