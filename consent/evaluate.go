package consent

import (
	"slices"
	"time"

	"github.com/smartkit/smartkit/scopes"
)

// Role is the signed-in user's relation to the data.
type Role string

// The roles the policy distinguishes.
const (
	Clinician     Role = "clinician"
	PatientRole   Role = "patient"
	RelatedPerson Role = "related-person"
	Admin         Role = "admin"
)

// App is what the policy needs to know about the requesting app.
type App struct {
	ClientID string
	Name     string
	Category string
	RiskTier string // low, moderate, high, critical ("" counts as critical)
	// Approved is the app's approved scope set in this environment.
	Approved scopes.Set
}

// A Request is one authorization to decide.
type Request struct {
	Tenant       string
	App          App
	UserID       string
	Role         Role
	Patient      string
	Requested    scopes.Set
	Environment  string
	PurposeOfUse string // v3-ActReason, e.g. TREAT, PATRQT
	Now          time.Time
}

// A Refusal is one scope the policy will not grant, with why.
type Refusal struct {
	Scope  string
	Reason string
}

// Clearance is what a grant may see of labelled data; it travels with the
// grant to the proxy.
type Clearance struct {
	MaxConfidentiality Confidentiality `json:"max_confidentiality"`
	Tags               []string        `json:"tags,omitempty"` // sensitivity tags released
}

// Allows reports whether a resource with these labels may be released.
func (c Clearance) Allows(conf Confidentiality, tags []string) bool {
	if conf == "" {
		conf = Normal
	}
	max := c.MaxConfidentiality
	if max == "" {
		max = Normal
	}
	if conf.Rank() > max.Rank() {
		return false
	}
	for _, t := range tags {
		if isSensitive(t) && !slices.Contains(c.Tags, t) {
			return false
		}
	}
	return true
}

// Unrestricted reports whether Allows accepts every label: the highest
// confidentiality and every sensitivity tag of this package's lists. A
// policy enforcement point may then skip reading labels it could not act on.
func (c Clearance) Unrestricted() bool {
	if c.MaxConfidentiality != VeryRestricted {
		return false
	}
	for _, set := range [][]string{SensitiveTags, HighlySensitiveTags, SegmentedTags} {
		for _, t := range set {
			if !slices.Contains(c.Tags, t) {
				return false
			}
		}
	}
	return true
}

func isSensitive(tag string) bool {
	return slices.Contains(SensitiveTags, tag) || slices.Contains(HighlySensitiveTags, tag) || slices.Contains(SegmentedTags, tag)
}

// A Decision is the outcome of Evaluate.
type Decision struct {
	// Granted may be granted without asking: low-sensitivity reads the
	// category auto-approves, or what a live remembered grant covers.
	Granted scopes.Set
	// Ask needs the person's choice on the consent page.
	Ask scopes.Set
	// Refused lists what will not be granted, each with a reason.
	Refused []Refusal
	// AdminReview: an administrator must approve this app's request first.
	AdminReview bool
	// Clearance for sensitive data.
	Clearance Clearance
	// Remembered is the remembered grant used, if any.
	Remembered *Grant
	// BasedOn lists the policy URI and remembered grant behind the decision.
	BasedOn []string
}

// Grantable is the most the person may approve: Granted ∪ Ask.
func (d Decision) Grantable() scopes.Set { return d.Granted.Union(d.Ask) }

// Evaluate decides a request under a policy, given the live remembered
// grant of this app, user and patient (nil if none). It is pure.
func Evaluate(p *Policy, r Request, remembered *Grant) Decision {
	d := Decision{Clearance: clearance(p, r.App.Category)}
	if p.URI != "" {
		d.BasedOn = append(d.BasedOn, p.URI)
	}
	refuse := func(sc scopes.Scope, reason string) { d.Refused = append(d.Refused, Refusal{sc.String(), reason}) }
	rule := p.Categories[r.App.Category]
	forbidden, _ := scopes.ParseLenient(p.Forbidden)
	var bundle *scopes.Set
	if rule.Bundle != "" {
		b, _ := scopes.ParseLenient(rule.Bundle)
		bundle = &b
	}
	adminWrites := p.AdminWritesFrom
	if adminWrites == "" {
		adminWrites = "high"
	}
	adminAll := p.AdminAllFrom
	if adminAll == "" {
		adminAll = "critical"
	}
	maxAuto := rule.MaxAutoTier
	if maxAuto == "" {
		maxAuto = "low"
	}
	autoTier := tierRank(r.App.RiskTier) >= 0 && tierRank(r.App.RiskTier) <= tierRank(maxAuto)
	var granted, ask []scopes.Scope
	for sc := range r.Requested.All() {
		switch {
		case !r.App.Approved.Covers(sc):
			refuse(sc, "not approved for this app")
			continue
		case sc.Kind() == scopes.Resource && coveredByAny(forbidden, sc):
			refuse(sc, "the organisation's policy forbids it")
			continue
		case rule.Default == Refuse:
			refuse(sc, "apps of this category may not access data")
			continue
		case bundle != nil && sc.Kind() == scopes.Resource && !bundle.Covers(sc):
			refuse(sc, "outside what apps of this category may have")
			continue
		}
		writes := sc.Perms()&(scopes.Create|scopes.Update|scopes.Delete) != 0
		if sc.Kind() == scopes.Resource && writes && tierAtLeast(r.App.RiskTier, adminWrites) || tierAtLeast(r.App.RiskTier, adminAll) {
			d.AdminReview = true
		}
		auto := rule.Default == AutoApprove && autoTier && lowSensitivity(p, sc)
		if auto {
			granted = append(granted, sc)
		} else {
			ask = append(ask, sc)
		}
	}
	// A live remembered grant answers what it covers.
	if remembered != nil && remembered.Live(r.Now) {
		prev, _ := scopes.ParseLenient(remembered.Scope)
		var still []scopes.Scope
		for _, sc := range ask {
			if prev.Covers(sc) {
				granted = append(granted, sc)
			} else {
				still = append(still, sc)
			}
		}
		if len(still) < len(ask) {
			d.Remembered = remembered
			d.BasedOn = append(d.BasedOn, remembered.ID)
		}
		ask = still
	}
	d.Granted, d.Ask = scopes.NewSet(granted...), scopes.NewSet(ask...)
	return d
}

func coveredByAny(forbidden scopes.Set, sc scopes.Scope) bool {
	if forbidden.Covers(sc) {
		return true
	}
	// A forbidden scope refuses any requested scope that overlaps it.
	for f := range forbidden.All() {
		if f.Kind() == scopes.Resource && f.Context() == sc.Context() && (f.Type() == "*" || sc.Type() == "*" || f.Type() == sc.Type()) &&
			f.Perms()&sc.Perms() != 0 {
			return true
		}
	}
	return false
}

// lowSensitivity reports whether a scope may be auto-approved: launch,
// identity and messaging scopes; reads (no writes) of resource types the
// policy lists as low-risk. Wildcards, writes and offline access always ask.
func lowSensitivity(p *Policy, sc scopes.Scope) bool {
	switch sc.Kind() {
	case scopes.Launch, scopes.LaunchContext, scopes.Identity:
		return true
	case scopes.Resource:
		return sc.Perms()&(scopes.Create|scopes.Update|scopes.Delete) == 0 && sc.Type() != "*" &&
			slices.Contains(p.AutoApproveTypes, sc.Type())
	}
	return false // refresh (persistent access), extensions, messaging: a person decides
}

func clearance(p *Policy, category string) Clearance {
	c := Clearance{MaxConfidentiality: p.MaxConfidentiality}
	if c.MaxConfidentiality == "" {
		c.MaxConfidentiality = Normal
	}
	c.Tags = append(slices.Clone(p.ReleasedTags), p.Categories[category].ReleasedTags...)
	slices.Sort(c.Tags)
	c.Tags = slices.Compact(c.Tags)
	return c
}
