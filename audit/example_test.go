package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/smartkit/smartkit/audit"
)

func ExampleMulti() {
	var mem audit.Memory
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "time" {
				return slog.Attr{}
			}
			return a
		},
	}))
	sink := audit.Multi(&mem, audit.Slog{Logger: logger})
	_ = sink.Record(context.Background(), audit.Event{
		Time: time.Unix(0, 0), Type: audit.CodeReuse, Outcome: audit.Failure, Severity: audit.Security,
		ClientID: "app", Reason: "invalid_grant: code already used",
	})
	fmt.Println(len(mem.Of(audit.CodeReuse)))
	// Output:
	// level=WARN msg=audit event.type=code.reuse event.outcome=failure event.severity=security event.reason="invalid_grant: code already used" event.client_id=app
	// 1
}
