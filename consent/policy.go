package consent

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/smartkit/smartkit/scopes"
)

// The IHE PCF implicit policies, used as policy identifiers so they mean
// something outside smartkit.
const (
	PolicyBasicNormal    = "https://profiles.ihe.net/ITI/PCF/Policy-basic-normal"
	PolicyAllNormal      = "https://profiles.ihe.net/ITI/PCF/Policy-all-normal"
	PolicyBreakGlassOnly = "https://profiles.ihe.net/ITI/PCF/Policy-break-glass-only"
	PolicyDeny           = "https://profiles.ihe.net/ITI/PCF/Policy-deny"
)

// Action is what a category's default does with a request.
type Action string

// The category defaults.
const (
	Ask         Action = "ask"          // a person decides (the default)
	AutoApprove Action = "auto-approve" // low-sensitivity reads need no question
	Refuse      Action = "deny"         // apps of this category get nothing
)

// Confidentiality is a v3-Confidentiality code, ordered U < L < M < N < R < V.
type Confidentiality string

// The confidentiality codes (http://terminology.hl7.org/CodeSystem/v3-Confidentiality).
const (
	Unrestricted   Confidentiality = "U"
	LowConf        Confidentiality = "L"
	ModerateConf   Confidentiality = "M"
	Normal         Confidentiality = "N"
	Restricted     Confidentiality = "R"
	VeryRestricted Confidentiality = "V"
)

// Rank orders confidentiality codes; unknown codes rank highest.
func (c Confidentiality) Rank() int {
	if i := slices.Index([]Confidentiality{Unrestricted, LowConf, ModerateConf, Normal, Restricted, VeryRestricted}, c); i >= 0 {
		return i
	}
	return 99
}

// Sensitivity tags (http://terminology.hl7.org/CodeSystem/v3-ActCode) that
// are restricted by default, by tier (CONSENT-AUDIT-REGISTRY §2.4).
var (
	SensitiveTags       = []string{"SEX", "STD", "GDIS", "PREGNANT", "ADOL"}
	HighlySensitiveTags = []string{"PSY", "MH", "BH", "HIV", "SDV", "MST"}
	SegmentedTags       = []string{"ETH", "SUD", "ETHUD", "OPIOIDUD", "42CFRPart2", "PSYTHPN"}
)

// A CategoryRule is the policy for one app category.
type CategoryRule struct {
	// Bundle, when set, is the most an app of the category may be granted.
	Bundle string `json:"bundle,omitempty"`
	// Default is ask (the zero value), auto-approve or deny.
	Default Action `json:"default,omitempty"`
	// MaxAutoTier is the highest app risk tier whose low-sensitivity reads
	// may be auto-approved; "" means low.
	MaxAutoTier string `json:"max_auto_tier,omitempty"`
	// ReleasedTags are sensitivity tags apps of this category may see, on
	// top of the policy's.
	ReleasedTags []string `json:"released_tags,omitempty"`
}

// A Policy is the organisation's consent policy. The zero Policy asks a
// person about everything, refuses nothing beyond the app's approval, and
// releases normal data only (clearance N, no sensitivity tags).
type Policy struct {
	// URI identifies the policy in force (an IHE PCF URI or the host's own).
	URI string `json:"uri,omitempty"`
	// Categories maps an app category to its rule; missing categories ask.
	Categories map[string]CategoryRule `json:"categories,omitempty"`
	// AutoApproveTypes are resource types low-risk enough to read without
	// asking (e.g. Appointment, Practitioner). Everything else needs a
	// person's explicit approval.
	AutoApproveTypes []string `json:"auto_approve_types,omitempty"`
	// Forbidden are scopes no app may have: a requested scope any of them
	// covers is refused. Organisation denials win over consent.
	Forbidden string `json:"forbidden,omitempty"`
	// AdminWritesFrom is the lowest app risk tier whose write scopes need
	// an administrator's review; "" means high.
	AdminWritesFrom string `json:"admin_writes_from,omitempty"`
	// AdminAllFrom is the lowest tier for which every request needs an
	// administrator's review; "" means critical.
	AdminAllFrom string `json:"admin_all_from,omitempty"`
	// MaxConfidentiality is the highest confidentiality any app may see; "" means N.
	MaxConfidentiality Confidentiality `json:"max_confidentiality,omitempty"`
	// ReleasedTags are sensitivity tags apps may see at all. Empty means
	// none: sensitive, highly sensitive and segmented data stay withheld.
	ReleasedTags []string `json:"released_tags,omitempty"`
	// RememberFor is how long an approval is remembered; 0 means 90 days,
	// negative means never remembered.
	RememberFor time.Duration `json:"remember_for,omitempty"`
}

// ParsePolicy reads a policy from JSON and validates it.
func ParsePolicy(b []byte) (*Policy, error) {
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("consent: policy: %w", err)
	}
	return &p, p.Validate()
}

// Validate checks that the policy's scopes parse and its codes are known.
func (p *Policy) Validate() error {
	if p.Forbidden != "" {
		if _, err := scopes.ParseSet(p.Forbidden); err != nil {
			return fmt.Errorf("consent: policy forbidden scopes: %w", err)
		}
	}
	for name, c := range p.Categories {
		if c.Bundle != "" {
			if _, err := scopes.ParseSet(c.Bundle); err != nil {
				return fmt.Errorf("consent: category %q bundle: %w", name, err)
			}
		}
		switch c.Default {
		case "", Ask, AutoApprove, Refuse:
		default:
			return fmt.Errorf("consent: category %q: unknown default %q", name, c.Default)
		}
		if c.MaxAutoTier != "" && tierRank(c.MaxAutoTier) < 0 {
			return fmt.Errorf("consent: category %q: unknown tier %q", name, c.MaxAutoTier)
		}
	}
	for _, t := range []string{p.AdminWritesFrom, p.AdminAllFrom} {
		if t != "" && tierRank(t) < 0 {
			return fmt.Errorf("consent: unknown tier %q", t)
		}
	}
	if p.MaxConfidentiality != "" && p.MaxConfidentiality.Rank() == 99 {
		return fmt.Errorf("consent: unknown confidentiality %q", p.MaxConfidentiality)
	}
	return nil
}

func (p *Policy) rememberFor() time.Duration {
	if p.RememberFor == 0 {
		return 90 * 24 * time.Hour
	}
	return p.RememberFor
}

// tierRank orders the registry's risk tiers; -1 for unknown.
func tierRank(t string) int { return slices.Index([]string{"low", "moderate", "high", "critical"}, t) }

func tierAtLeast(t, floor string) bool {
	r := tierRank(t)
	return r < 0 || r >= tierRank(floor) // an unknown tier is treated as the riskiest
}
