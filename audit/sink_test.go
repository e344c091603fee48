package audit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
)

func TestMultiReturnsErrors(t *testing.T) {
	var mem audit.Memory
	boom := errors.New("disk full")
	sink := audit.Multi(&mem, audit.SinkFunc(func(context.Context, audit.Event) error { return boom }))
	if err := sink.Record(context.Background(), audit.Event{Type: audit.TokenIssued}); !errors.Is(err, boom) {
		t.Fatalf("Multi error = %v, want %v", err, boom)
	}
	if len(mem.Events()) != 1 {
		t.Fatal("the working sink did not record")
	}
}

func TestSlogEscapes(t *testing.T) {
	var buf bytes.Buffer
	s := audit.Slog{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	_ = s.Record(context.Background(), audit.Event{Type: audit.AuthorizeRefused, ClientID: "evil\nlevel=ERROR msg=forged"})
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("an event value forged a log line:\n%s", buf.String())
	}
}

func TestRef(t *testing.T) {
	if audit.Ref("") != "" || audit.Ref("a") == audit.Ref("b") || strings.Contains(audit.Ref("secret-launch"), "secret") {
		t.Fatal("Ref is not a one-way reference")
	}
}
