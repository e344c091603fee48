package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// headless starts a headless Chromium for the test (stopped at cleanup)
// and returns a context to drive its first tab, bounded to a minute.
func headless(t *testing.T, exe string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.Flag("disable-gpu", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox on
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// browserSandbox starts a sandbox and a headless Chromium with its tab
// open, or skips the test (no Chromium, or -short).
func browserSandbox(t *testing.T) (*Sandbox, context.Context) {
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium installed (apt-get install chromium; .ci/run installs it)")
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	sb := startSandbox(t)
	ctx := headless(t, exe)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return sb, ctx
}

// chromium returns the path of an installed Chromium or Chrome, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowserEHRLaunch drives a real headless Chromium: sign in to the EHR
// shell, open a chart, launch the example app in its iframe, approve the
// consent page inside the frame if one is shown, and see the patient's name
// rendered by the app. It also checks the security headers the browser
// received for the shell and for the framed app.
func TestBrowserEHRLaunch(t *testing.T) {
	sb, ctx := browserSandbox(t)
	base := sb.URL

	// Record the headers of every document the tab loads.
	var mu sync.Mutex
	docs := map[string]network.Headers{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && e.Type == network.ResourceTypeDocument {
			mu.Lock()
			docs[e.Response.URL] = e.Response.Headers
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	openApp(t, ctx, base)

	// Inside the frame: approve consent if asked, then wait for the banner.
	// The approve button is pressed once only: a document still showing it
	// while the submission is under way must not submit twice.
	const frameState = `(() => {
		const d = document.getElementById('app-frame').contentDocument;
		if (!d) return 'none';
		const approve = d.getElementById('approve');
		if (approve) {
			if (!window.approved) { window.approved = true; approve.click(); }
			return 'consent';
		}
		const name = d.getElementById('patient-name');
		if (name) return 'name:' + name.textContent;
		const e = d.getElementById('error');
		if (e) return 'error:' + e.textContent;
		return 'loading';
	})()`
	var state string
	consented := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if state, err = chromedp.Run(ctx, chromedp.Evaluate[string](frameState)); err != nil {
			t.Fatalf("reading the frame: %v", err)
		}
		if state == "consent" {
			consented = true
		}
		if strings.HasPrefix(state, "name:") || strings.HasPrefix(state, "error:") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := patientName(sb.fhir.current["Patient/pt-001"])
	if got := strings.TrimPrefix(state, "name:"); got != want {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const f = document.getElementById('app-frame'); return f.contentWindow.location.href + "\n" + (f.contentDocument ? f.contentDocument.documentElement.outerHTML : ""); })()`))
		t.Logf("frame: %s", body)
		t.Fatalf("the app in the frame shows %q, want the patient's name %q", state, want)
	}
	t.Logf("app rendered %q (consent page shown: %v)", want, consented)

	mu.Lock()
	defer mu.Unlock()
	var shell, app network.Headers
	for u, h := range docs {
		switch {
		case strings.HasPrefix(u, base+"/ehr/patient/pt-001"):
			shell = h
		case strings.HasPrefix(u, base+"/app/") && !strings.Contains(u, "/app/launch") && !strings.Contains(u, "/app/callback"):
			app = h
		}
	}
	header := func(h network.Headers, name string) string {
		for k, v := range h {
			if strings.EqualFold(k, name) {
				s, _ := v.(string)
				return s
			}
		}
		return ""
	}
	if csp := header(shell, "Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self'") || !strings.Contains(csp, "script-src 'none'") {
		t.Errorf("EHR chart CSP = %q; want script-src 'none' and frame-ancestors 'self'", csp)
	}
	csp := header(app, "Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self'") || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("framed app CSP = %q; want frame-ancestors limited to the EHR ('self')", csp)
	}
}

// openApp signs in to the EHR shell as the clinician, opens a chart and
// launches the example app into its frame.
func openApp(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ehr/"),
		chromedp.WaitVisible(`input[name="username"]`),
		chromedp.SendKeys(`input[name="username"]`, "clinician"),
		chromedp.SendKeys(`input[name="password"]`, "pw"),
		chromedp.Submit(`input[name="password"]`),
		chromedp.WaitVisible(`#patients`),
	)
	if err != nil {
		t.Fatalf("signing in to the EHR shell: %v", err)
	}
	who, err := chromedp.Run(ctx, chromedp.Text(`#user`))
	if err != nil {
		t.Fatal(err)
	}
	if who == "" {
		t.Error("the shell did not show who is signed in")
	}
	err = chromedp.Do(ctx,
		chromedp.Click(`a[href="/ehr/patient/pt-001"]`),
		chromedp.WaitVisible(`#chart-name`),
		chromedp.Click(`#apps a.launch`),
		chromedp.WaitVisible(`#app-frame`),
	)
	if err != nil {
		t.Fatalf("opening the chart and launching the app: %v", err)
	}
}

// TestBrowserConsentSubmitsOnce: a double click on Allow sends one consent,
// not two. The server refuses a consent form's second submission (replay
// is rejected, one code only), so a browser that sent two would show that
// refusal, drop the first answer with its code, and the launch would be
// lost. The consent POSTs are held in the network, as on a slow link, so
// the second click lands while the first is under way.
func TestBrowserConsentSubmitsOnce(t *testing.T) {
	sb, ctx := browserSandbox(t)
	var mu sync.Mutex
	var held []fetch.RequestID
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			mu.Lock()
			held = append(held, e.RequestID)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	heldCount := func() int { mu.Lock(); defer mu.Unlock(); return len(held) }
	_, err = chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/authorize/consent*"}}})
	if err != nil {
		t.Fatal(err)
	}
	openApp(t, ctx, sb.URL)

	frame := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			const d = document.getElementById('app-frame').contentDocument;
			if (!d) return 'none';
			`+js+`
		})()`))
		if err != nil {
			t.Fatalf("reading the frame: %v", err)
		}
		return v
	}
	waitFor := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !done(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	const click = `const a = d.getElementById('approve'); if (!a) return 'gone'; a.click(); return 'clicked';`
	waitFor("the consent page", func() bool { return frame(`return d.getElementById('approve') ? 'yes' : 'no';`) == "yes" })
	if got := frame(click); got != "clicked" {
		t.Fatalf("first click: %s", got)
	}

	waitFor("the consent POST", func() bool { return heldCount() == 1 })
	if got := frame(click); got != "clicked" { // the page is still there: its answer is held
		t.Fatalf("second click: %s", got)
	}
	// Give a second submission the time it needs to reach the network.
	time.Sleep(500 * time.Millisecond)
	if n := heldCount(); n != 1 {
		t.Errorf("a double click sent %d consent submissions, want 1", n)
	}
	mu.Lock()
	ids := slices.Clone(held)
	mu.Unlock()
	for _, id := range ids {
		// A superseded submission may be gone already.
		_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: id})
	}
	if _, err := chromedp.Call(ctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	var state string
	waitFor("the app", func() bool {
		state = frame(`const n = d.getElementById('patient-name'); if (n) return 'name:' + n.textContent;
			const e = d.getElementById('error') || d.getElementById('error-description'); if (e) return 'error:' + e.textContent;
			return 'loading';`)
		return state != "loading" && state != "none"
	})
	if want := "name:" + patientName(sb.fhir.current["Patient/pt-001"]); state != want {
		t.Fatalf("after a double click the frame shows %q, want %q", state, want)
	}
}

// TestBrowserNativeBinaryRunsNothing opens, in a real headless Chromium, a
// Binary an app stored as text/html, read through the proxy in its native
// form (Accept: text/html): the browser renders it, but its script does
// not run, and the document has an opaque origin (the proxy's
// Content-Security-Policy sandbox), so it could not reach the proxy
// origin's storage even if it ran.
func TestBrowserNativeBinaryRunsNothing(t *testing.T) {
	sb, ctx := browserSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Binary.cruds patient/Patient.rs")
	page := `<!doctype html><html><head><title>stored</title></head><body><p id="x">a stored page</p>` +
		`<script>document.title = "ran"</script></body></html>`
	resp := callWith(t, tok, http.MethodPost, sb.FHIRBase+"/Binary", page, "Content-Type", "text/html", "X-Security-Context", "Patient/pt-001")
	var created struct{ ID string }
	err := json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("storing the page: %d %v", resp.StatusCode, err)
	}
	// The browser's own requests for the page go out as an app's fetch of
	// it would: with the bearer token, asking for text/html only (a
	// navigation's Accept names application/xml too, a FHIR format, and
	// would be answered with the FHIR JSON Binary).
	err = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			go func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID, Headers: []*fetch.HeaderEntry{
					{Name: "Authorization", Value: "Bearer " + tok}, {Name: "Accept", Value: "text/html"}}})
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/fhir/Binary/*"}}}); err != nil {
		t.Fatal(err)
	}
	answer, err := chromedp.RunResponse(ctx, chromedp.Navigate(sb.FHIRBase+"/Binary/"+created.ID))
	if err != nil || answer.Status != http.StatusOK || answer.MimeType != "text/html" {
		t.Fatalf("the page through the proxy: %v %+v", err, answer)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(`#x`))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
	if err != nil {
		t.Fatal(err)
	}
	origin, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.origin`))
	if err != nil {
		t.Fatal(err)
	}
	if text != "a stored page" {
		t.Errorf("the page was not rendered: %q", text)
	}
	if title != "stored" {
		t.Errorf("the stored page's script ran: title %q", title)
	}
	if origin != "null" {
		t.Errorf("the stored page has the proxy's origin %q, not an opaque one", origin)
	}
}
