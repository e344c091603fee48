package randid

import "testing"

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if !Valid(id) {
			t.Fatalf("New() = %q is not Valid", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "abc", New() + "x", New()[1:] + "=", New()[1:] + "."} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}
