package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/smartkit/smartkit/scopes"
)

// ErrTransition is matched by every refused lifecycle transition.
var ErrTransition = errors.New("registry: transition not allowed")

// A TransitionError says why a transition was refused.
type TransitionError struct {
	From, To State
	Reason   string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("registry: %s → %s not allowed: %s", e.From, e.To, e.Reason)
}

// Is makes a TransitionError match ErrTransition.
func (e *TransitionError) Is(target error) bool { return target == ErrTransition }

// edges is the state machine: which states may follow which.
var edges = map[State][]State{
	Draft:              {SandboxApproved, Retired},
	SandboxApproved:    {ProductionApproved, Suspended, Retired},
	ProductionApproved: {Suspended, Retired},
	Suspended:          {SandboxApproved, ProductionApproved, Retired}, // reinstatement: back where it came from
	Retired:            nil,
}

// checkTransition applies the state machine and each edge's preconditions.
func checkTransition(a *App, to State) error {
	refuse := func(reason string) error { return &TransitionError{From: a.State, To: to, Reason: reason} }
	allowed := false
	for _, s := range edges[a.State] {
		allowed = allowed || s == to
	}
	if !allowed {
		if a.State == Retired {
			return refuse("retired is final")
		}
		return refuse("no such edge in the lifecycle")
	}
	switch {
	case a.State == Suspended && to != Retired && to != a.PreviousState:
		return refuse("a suspended app returns only to the state it was suspended from (" + string(a.PreviousState) + ")")
	case a.State == Draft && to == SandboxApproved && (a.Current.Review == nil || !a.Current.Review.Passed):
		return refuse("the app needs a passed review")
	case to == ProductionApproved && a.State == SandboxApproved:
		if a.ApprovedScope == "" {
			return refuse("production needs an approved scope set")
		}
		if strings.TrimSpace(a.DUA) == "" {
			return refuse("production needs a data-use agreement reference")
		}
		if a.Pending != nil {
			return refuse("a changed version is waiting for review")
		}
		approved, err := scopes.ParseSet(a.ApprovedScope)
		requested, _ := scopes.ParseLenient(a.Current.Metadata.Scope)
		if err != nil || !requested.CoversAll(approved) {
			return refuse("the approved scope set must be within the requested scopes")
		}
	}
	return nil
}
