package registry

import (
	"context"
	"slices"
	"time"

	"github.com/smartkit/smartkit/scopes"
)

// A Listing is an app as a marketplace shows it.
type Listing struct {
	AppID              string
	Name               string
	LogoURI            string
	Category           Category
	RiskTier           RiskTier
	Environment        Environment
	ClientID           string
	Scope              string   // what the app may be granted there
	ScopeSummary       []string // plain language, one line per scope
	Summary            string   // one sentence for the card
	LastReviewed       time.Time
	RecertificationDue time.Time
}

func listing(a App, env Environment) Listing {
	scope := a.Current.Metadata.Scope
	if env == Production {
		scope = a.ApprovedScope
	}
	set, _ := scopes.ParseLenient(scope)
	d := scopes.DescribeSet(set)
	l := Listing{AppID: a.ID, Name: a.Current.Metadata.ClientName, LogoURI: a.Current.Metadata.LogoURI, Category: a.Category,
		RiskTier: a.RiskTier, Environment: env, ClientID: a.ClientID(env), Scope: scope, Summary: d.Summary,
		LastReviewed: a.LastReviewed, RecertificationDue: a.RecertificationDue}
	for _, it := range d.Items {
		l.ScopeSummary = append(l.ScopeSummary, it.Text)
	}
	return l
}

// Catalog lists the apps approved for env, optionally of one category
// ("" for all), ordered by name.
func (r *Registry) Catalog(ctx context.Context, tenant string, env Environment, category Category) ([]Listing, error) {
	apps, err := r.Store.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []Listing
	for _, a := range apps {
		if a.State.permits(env) && (category == "" || a.Category == category) {
			out = append(out, listing(a, env))
		}
	}
	slices.SortFunc(out, func(x, y Listing) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// Similar lists up to n apps approved for env that resemble app id: the
// overlap (Jaccard) of the context/type pairs their scopes reach, plus a
// bonus for the same category. Apps with nothing in common are left out.
func (r *Registry) Similar(ctx context.Context, tenant, id string, env Environment, n int) ([]Listing, error) {
	me, err := r.Store.App(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	apps, err := r.Store.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	mine := patterns(me.Current.Metadata.Scope)
	type scored struct {
		l     Listing
		score float64
	}
	var cands []scored
	for _, a := range apps {
		if a.ID == me.ID || !a.State.permits(env) {
			continue
		}
		theirs := patterns(a.Current.Metadata.Scope)
		inter, union := 0, len(mine)
		for p := range theirs {
			if mine[p] {
				inter++
			} else {
				union++
			}
		}
		score := 0.0
		if union > 0 {
			score = float64(inter) / float64(union)
		}
		if a.Category == me.Category {
			score += 0.25
		}
		if score > 0 {
			cands = append(cands, scored{listing(a, env), score})
		}
	}
	slices.SortStableFunc(cands, func(x, y scored) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return 0
	})
	var out []Listing
	for i := 0; i < len(cands) && i < n; i++ {
		out = append(out, cands[i].l)
	}
	return out, nil
}

// patterns returns the context/type pairs a scope string reaches.
func patterns(scope string) map[string]bool {
	set, _ := scopes.ParseLenient(scope)
	out := map[string]bool{}
	for sc := range set.All() {
		if sc.Kind() == scopes.Resource {
			out[sc.Context().String()+"/"+sc.Type()] = true
		}
	}
	return out
}
