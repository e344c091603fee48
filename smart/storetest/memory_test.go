package storetest_test

import (
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/registry"
	"github.com/smartkit/smartkit/smart/storetest"
)

// The memory stores meet the bar the SQL stores do.
func TestMemoryStores(t *testing.T) {
	t.Run("smart", func(t *testing.T) {
		storetest.Smart(t, func(*testing.T) smart.Store { return &smart.MemoryStore{} })
	})
	t.Run("launch", func(t *testing.T) { storetest.Launch(t, func(*testing.T) launch.Store { return &launch.Memory{} }) })
	t.Run("registry", func(t *testing.T) {
		storetest.Registry(t, func(*testing.T) registry.Store { return &registry.Memory{} })
	})
	t.Run("consent", func(t *testing.T) { storetest.Consent(t, func(*testing.T) consent.Store { return &consent.Memory{} }) })
	t.Run("audit", func(t *testing.T) { storetest.AuditLog(t, func(*testing.T) audit.Log { return &audit.MemoryLog{} }) })
}
