package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/examples/app"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/registry"
	"github.com/smartkit/smartkit/smart/sqlstore"
)

// Config is the sandbox's command line.
type Config struct {
	Addr         string        // listen address; the FHIR base is http://{Addr}/fhir
	Data         string        // data directory: SQLite file, keys, cookie secret
	DB           string        // DSN; "" means the SQLite file in Data
	DemoPassword string        // every demo user's password
	CodeTTL      time.Duration // authorization code lifetime; 0 means the server's 60 s
	TokenTTL     time.Duration // access-token lifetime; 0 means the server default
	Patients     int           // ordinary synthetic patients (plus the awkward ones)
	Log          io.Writer     // progress and URLs; nil means silent
	// ExportStorage has the data server write bulk export files to an
	// object store of its own at another address, named in manifests by
	// pre-signed URLs, as Azure's FHIR service writes them to a storage
	// account; the proxy follows them there (fhirproxy.Proxy.ExportStorage).
	ExportStorage bool
}

// Sandbox is a running sandbox.
type Sandbox struct {
	URL, FHIRBase, Issuer string
	Store                 *sqlstore.Store
	Auth                  *smart.Server
	Registry              *registry.Registry
	Consent               *consent.Service
	AuditLog              audit.Log
	Launches              *launch.Service
	users                 map[string]smart.User
	cfg                   Config
	http, data, storage   *http.Server
	async                 *audit.Async
	cancel                context.CancelFunc
	// tap, when a test sets it, sees each of the proxy's audit events as
	// it is recorded (the log has it only once the batch is written).
	tap      atomic.Pointer[func(audit.Event)]
	sessions *sessions
	fhir     *fhirServer
}

// The demo users (the password is Config.DemoPassword).
func demoUsers() map[string]smart.User {
	return map[string]smart.User{
		"clinician": {ID: "clinician", FHIRUser: "Practitioner/pr-lee", Name: "Dr Jordan Lee", Role: "clinician"},
		"patient":   {ID: "patient", FHIRUser: "Patient/" + DemoPatient, Name: "Sandbox Patient", Role: "patient", PatientID: DemoPatient},
		"admin":     {ID: "admin", Name: "Platform Administrator", Role: "admin"},
	}
}

// ExampleAppID is the pre-registered example app's sandbox client id.
const ExampleAppID = "example-app"

// Start opens storage, seeds data, and serves the sandbox until Close.
func Start(ctx context.Context, cfg Config) (*Sandbox, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	if cfg.Patients <= 0 {
		cfg.Patients = 50
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	sb := &Sandbox{cfg: cfg, users: demoUsers()}
	sb.URL = "http://" + ln.Addr().String()
	sb.FHIRBase, sb.Issuer = sb.URL+"/fhir", sb.URL+"/auth"
	dsn := cfg.DB
	if dsn == "" {
		dsn = filepath.Join(cfg.Data, "smartkit.db")
	}
	logf("opening storage %s", redactDSN(dsn))
	if sb.Store, err = sqlstore.Open(ctx, dsn); err != nil {
		ln.Close()
		return nil, err
	}
	keys, err := loadKeys(cfg.Data)
	if err != nil {
		return nil, err
	}
	keySet, err := smart.NewKeySet(keys)
	if err != nil {
		return nil, err
	}
	secret, err := loadSecret(filepath.Join(cfg.Data, "cookie.key"))
	if err != nil {
		return nil, err
	}
	sb.sessions = &sessions{key: secret}

	// Audit: an async queue in front of the hash-chained SQL log.
	sb.AuditLog = sb.Store.Audit()
	sb.async = &audit.Async{Next: sb.AuditLog, Overflow: audit.Block}
	runCtx, cancel := context.WithCancel(context.Background())
	sb.cancel = cancel
	go func() { _ = sb.async.Run(runCtx) }()

	logf("generating synthetic data (%d patients and the awkward cases)", cfg.Patients)
	data := generate(cfg.Patients)
	dataLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sb.fhir = newFHIRServer(sb.FHIRBase, data)
	sb.data = &http.Server{Handler: sb.fhir, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sb.data.Serve(dataLn) }()
	var exportStorage []string
	if cfg.ExportStorage {
		storeLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		sb.fhir.objects = newObjectStore("http://"+storeLn.Addr().String(), sb.fhir)
		sb.storage = &http.Server{Handler: sb.fhir.objects, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = sb.storage.Serve(storeLn) }()
		exportStorage = []string{sb.fhir.objects.prefix()}
		logf("bulk export files go to the object store at %s", sb.fhir.objects.prefix())
	}
	logf("loaded %d resources for %d patients", len(data.resources), len(data.patients))

	sb.Registry = &registry.Registry{Store: sb.Store.Registry(), Audit: sb.async}
	sb.Launches = &launch.Service{Store: sb.Store.Launches(), Audit: sb.async}
	sb.Consent = &consent.Service{Store: sb.Store.Consent(), Audit: sb.async, Policy: &consent.Policy{
		URI: consent.PolicyBasicNormal, AutoApproveTypes: []string{"Appointment", "Practitioner"},
		Forbidden: "patient/*.d user/*.d",
		Categories: map[string]consent.CategoryRule{
			"patient-engagement": {Default: consent.AutoApprove, MaxAutoTier: "moderate"},
		},
	}}
	sb.Auth = &smart.Server{
		BaseURL: sb.Issuer, Tenants: []smart.Tenant{{FHIRBases: []string{sb.FHIRBase}}},
		Clients: sb.Registry.Clients(registry.Sandbox), Store: sb.Store.Smart(), Keys: keySet,
		Authenticator: smart.AuthenticatorFunc(sb.authenticate), Launches: sb.Launches, Patients: sb,
		Consent: &smart.PolicyConsent{Service: sb.Consent, Apps: sb.appInfo}, Audit: sb.async,
		AccessTokenTTL: cfg.TokenTTL, CodeTTL: cfg.CodeTTL, FrameAncestors: []string{"'self'"},
		RegistrationURL: sb.URL + "/dev/register", ManagementURL: sb.URL + "/ehr/apps",
		Sessions: sb.sessions, // online_access ends at sign-out
	}
	sb.Consent.Revoker = sb.Auth
	sb.Registry.Revokers = []registry.Revoker{sb.Auth}
	if err := sb.registerExampleApp(ctx); err != nil {
		return nil, err
	}
	if err := sb.registerBackend(ctx); err != nil {
		return nil, err
	}
	verifier, err := sb.Auth.Verifier("", sb.FHIRBase)
	if err != nil {
		return nil, err
	}
	upstream, _ := url.Parse("http://" + dataLn.Addr().String())
	proxyAudit := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		if tap := sb.tap.Load(); tap != nil {
			(*tap)(e)
		}
		return sb.async.Record(ctx, e)
	})
	proxy := &fhirproxy.Proxy{Upstream: upstream, Verifier: verifier, Audit: proxyAudit, Base: sb.FHIRBase,
		SMARTConfigURL: sb.FHIRBase + "/.well-known/smart-configuration", AuthorizeURL: sb.Issuer + "/authorize",
		TokenURL: sb.Issuer + "/token", RevokeURL: sb.Issuer + "/revoke", IntrospectURL: sb.Issuer + "/introspect",
		AllowOrigin: fhirproxy.RegisteredOrigins(sb.Auth.Clients, ""),
		// Patient apps may read, and expand, the sandbox's terminology.
		SharedTypes: append(slices.Clone(fhirproxy.DefaultSharedTypes), "ValueSet", "CodeSystem"),
		// The sandbox shows who saw whose records: backend apps' answers
		// are read too, so their audit events name the patients disclosed.
		AuditEveryDisclosure: true,
		// Export files in the object store, with -export-storage: pre-signed,
		// so no StorageAuth.
		ExportStorage: exportStorage}
	exampleApp := &app.App{Base: "/app", EHROrigins: []string{"'self'"}, Client: &client.Config{
		ClientID: ExampleAppID, RedirectURL: sb.URL + "/app/callback", Issuers: []string{sb.FHIRBase},
		Scopes: []string{"openid", "fhirUser", "launch/patient", "patient/Patient.r", "patient/Observation.rs", "offline_access"},
		States: &client.CookieStore{Key: secret, Insecure: true, Path: "/app/"}}}

	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", sb.Auth))
	mux.Handle("/fhir/.well-known/smart-configuration", sb.Auth.SMARTConfigurationHandler(""))
	mux.Handle("/fhir/", http.StripPrefix("/fhir", proxy))
	mux.Handle("/dev/", http.StripPrefix("/dev", &registry.Registration{Registry: sb.Registry, Environment: registry.Sandbox,
		BaseURL: sb.URL + "/dev", Open: true, AutoApprove: true}))
	mux.Handle("/app/", exampleApp)
	mux.HandleFunc("/login", sb.login)
	mux.HandleFunc("/logout", sb.logout)
	mux.HandleFunc("/ehr/", sb.ehr)
	mux.HandleFunc("/portal/", sb.portal)
	mux.HandleFunc("/admin/", sb.admin)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ehr/", http.StatusFound) })
	sb.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { _ = sb.http.Serve(ln) }()
	logf("\nsmartkit sandbox ready at %s", sb.URL)
	logf("  FHIR base (iss):   %s", sb.FHIRBase)
	logf("  discovery:         %s/.well-known/smart-configuration", sb.FHIRBase)
	logf("  EHR shell:         %s/ehr/", sb.URL)
	logf("  developer portal:  %s/portal/", sb.URL)
	logf("  admin console:     %s/admin/ (sign in as admin)", sb.URL)
	logf("  registration:      %s/dev/register (RFC 7591, open in the sandbox)", sb.URL)
	logf("  example app:       %s/app/ (client_id %s)", sb.URL, ExampleAppID)
	logf("  backend job:       go run ./examples/backend -fhir %s -key %s", sb.FHIRBase, filepath.Join(cfg.Data, "backend-key.pem"))
	logf("  bulk export:       the same with -export 'Group/%s/$export?_type=Patient,Observation'", PanelGroup)
	logf("                     (add -patients Patient/pt-001 to POST a kick-off naming patients)")
	logf("  demo users:        clinician, patient (%s), admin; password %q", DemoPatient, cfg.DemoPassword)
	return sb, nil
}

// Close stops serving and flushes the audit log.
func (sb *Sandbox) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(sb.http.Shutdown(ctx), sb.data.Shutdown(ctx), sb.async.Close(ctx))
	if sb.storage != nil {
		err = errors.Join(err, sb.storage.Shutdown(ctx))
	}
	sb.cancel()
	return errors.Join(err, sb.Store.Close())
}

func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return dsn
}

// registerExampleApp registers and approves the example app once.
func (sb *Sandbox) registerExampleApp(ctx context.Context) error {
	return sb.registerBundled(ctx, ExampleAppID, registry.NewApp{Owner: registry.Owner{Name: "smartkit"}, Category: registry.ClinicianFacing,
		RiskTier: registry.Low, Metadata: registry.Metadata{ClientName: "Example SMART app", TokenEndpointAuthMethod: smart.AuthNone,
			RedirectURIs: []string{sb.URL + "/app/callback"}, LaunchURI: sb.URL + "/app/launch",
			Scope: "launch launch/patient openid fhirUser offline_access online_access patient/Patient.r patient/Observation.rs patient/*.rs user/*.rs"}})
}

// registerBackend registers the example backend job with the public half of
// its key (kept in the data directory as backend-key.pem for examples/backend).
func (sb *Sandbox) registerBackend(ctx context.Context) error {
	key, err := loadBackendKey(filepath.Join(sb.cfg.Data, "backend-key.pem"))
	if err != nil {
		return err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: BackendKeyID, Algorithm: "ES384", Use: "sig"}}})
	if err != nil {
		return err
	}
	return sb.registerBundled(ctx, BackendID, registry.NewApp{Owner: registry.Owner{Name: "smartkit"}, Category: registry.BackendPopulation,
		RiskTier: registry.Moderate, Metadata: registry.Metadata{ClientName: "Example backend job", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT,
			GrantTypes: []string{smart.GrantClientCredentials}, JWKS: jwks, Scope: "system/Patient.rs system/Observation.rs system/Group.r"}})
}

// The example backend's client id and key id.
const (
	BackendID    = "example-backend"
	BackendKeyID = "example-backend-1"
)

// registerBundled registers a bundled app once, sandbox-approved under a
// readable client id.
func (sb *Sandbox) registerBundled(ctx context.Context, clientID string, in registry.NewApp) error {
	if _, err := sb.Store.Registry().ByClientID(ctx, "", clientID); err == nil {
		return nil
	}
	in.Sandbox = &registry.SandboxApproval{Reason: "bundled example", ClientID: clientID}
	_, _, err := sb.Registry.Create(ctx, "", in, "sandbox")
	return err
}

// appInfo describes a client to the consent policy from the registry.
func (sb *Sandbox) appInfo(ctx context.Context, tenant string, c *smart.Client) (consent.App, error) {
	a, err := sb.Store.Registry().ByClientID(ctx, tenant, c.ID)
	if err != nil {
		return consent.App{}, err
	}
	approved, _ := scopes.ParseLenient(a.Current.Metadata.Scope)
	return consent.App{ClientID: c.ID, Name: a.Current.Metadata.ClientName, Category: string(a.Category), RiskTier: string(a.RiskTier),
		Approved: approved}, nil
}

// Search and Allowed make the sandbox the patient picker: clinicians may
// see every patient; a patient user only their own.
func (sb *Sandbox) Search(_ context.Context, _ string, u smart.User, query string) ([]smart.PatientChoice, error) {
	var out []smart.PatientChoice
	sb.fhir.mu.RLock()
	defer sb.fhir.mu.RUnlock()
	for _, key := range sb.fhir.order {
		if !strings.HasPrefix(key, "Patient/") {
			continue
		}
		p := sb.fhir.current[key]
		name := patientName(p)
		if (u.Role == "clinician" || p["id"] == u.PatientID) && strings.Contains(strings.ToLower(name+" "+p["id"].(string)), strings.ToLower(query)) {
			birth, _ := p["birthDate"].(string)
			out = append(out, smart.PatientChoice{ID: p["id"].(string), Name: name, BirthDate: birth})
		}
		if len(out) == 25 {
			break
		}
	}
	return out, nil
}

// Allowed re-checks a picker choice.
func (sb *Sandbox) Allowed(_ context.Context, _ string, u smart.User, id string) (bool, error) {
	sb.fhir.mu.RLock()
	_, ok := sb.fhir.current["Patient/"+id]
	sb.fhir.mu.RUnlock()
	return ok && (u.Role == "clinician" || u.PatientID == id), nil
}

func patientName(p resource) string {
	for _, n := range asList(p["name"]) {
		m, _ := n.(map[string]any)
		var parts []string
		for _, g := range asList(m["given"]) {
			parts = append(parts, fmt.Sprint(g))
		}
		if f, ok := m["family"].(string); ok {
			parts = append(parts, f)
		}
		if len(parts) > 0 {
			return strings.Join(parts, " ")
		}
	}
	return "(name unknown)"
}

func loadSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) == 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, os.WriteFile(path, b, 0o600)
}
