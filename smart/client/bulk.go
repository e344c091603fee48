package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bulk export (FHIR Bulk Data Access): a backend service exports many
// patients' data as NDJSON files in three steps. [StartExport] kicks it
// off (or [PostExport], with its parameters in a body, as naming patients
// requires), [Export.Wait] polls its status until the manifest, and
// [Download] and [Resources] read each file. Use the http.Client of a
// [Backend] (Backend.Client), which sends the token only to the FHIR
// server, so a file the manifest places elsewhere (requiresAccessToken
// false: a storage bucket's signed URL) gets no token; give the Backend an
// HTTPClient with a timeout long enough for the files, or none.

// An Export is a bulk export the server accepted: its status URL.
type Export struct {
	// Status is the URL the server gave for the export's status
	// (Content-Location): polled by Wait, deleted by Cancel.
	Status string
	// Progress is the server's last X-Progress, if any.
	Progress string
	// MinPoll and MaxPoll bound the waits between polls when the server
	// names none (Retry-After): the first is MinPoll, doubled each time up
	// to MaxPoll. Zero means 500 ms and 30 s.
	MinPoll, MaxPoll time.Duration

	hc *http.Client
}

// A Manifest is a finished export: where its files are.
type Manifest struct {
	TransactionTime     string       `json:"transactionTime"`
	Request             string       `json:"request"`
	RequiresAccessToken bool         `json:"requiresAccessToken"`
	Output              []ExportFile `json:"output"`
	// Error holds files of OperationOutcomes about what could not be
	// exported.
	Error []ExportFile `json:"error"`
	// Deleted holds, for an export with _since (Bulk Data 2.0), files of
	// the resources deleted since then: each line a transaction Bundle
	// whose entries are DELETEs naming them (request.url, Type/id). A
	// client that keeps a copy removes them from it.
	Deleted []ExportFile `json:"deleted"`
}

// An ExportFile is one NDJSON file of a Manifest.
type ExportFile struct {
	Type string `json:"type"`
	URL  string `json:"url"`
	// Count is the number of resources, when the server says (a proxy that
	// judges each line leaves it out).
	Count *int `json:"count,omitempty"`
}

// An ExportError is a refusal or failure the server answered a step of
// the export with.
type ExportError struct {
	Status int
	// Diagnostics are the OperationOutcome's, if it sent one.
	Diagnostics string
}

func (e *ExportError) Error() string {
	if e.Diagnostics == "" {
		return "client: bulk export: " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	}
	return "client: bulk export: " + strconv.Itoa(e.Status) + ": " + e.Diagnostics
}

// exportError reads a failed answer's OperationOutcome.
func exportError(resp *http.Response) error {
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&oo)
	e := &ExportError{Status: resp.StatusCode}
	if len(oo.Issue) > 0 {
		e.Diagnostics = oo.Issue[0].Diagnostics
	}
	return e
}

// StartExport kicks off a bulk export: kickOff is the operation's URL with
// its parameters, such as base+"/$export?_type=Patient,Observation" or
// base+"/Group/"+id+"/$export". The server must accept it to run
// asynchronously (202); anything else is an [*ExportError].
func StartExport(ctx context.Context, hc *http.Client, kickOff string) (*Export, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, kickOff, nil)
	if err != nil {
		return nil, err
	}
	return startExport(hc, req)
}

// ExportParams are a kick-off's parameters (Bulk Data), for [PostExport].
// Zero values are left out.
type ExportParams struct {
	Types        []string  // _type
	Since        time.Time // _since
	OutputFormat string    // _outputFormat
	// TypeFilters are _typeFilter queries, each a search of one type:
	// "Observation?category=laboratory".
	TypeFilters []string
	// Elements are _elements: "code", or "Observation.code" for one type.
	Elements []string
	// IncludeAssociatedData asks for non-focal resources:
	// "LatestProvenanceResources" or "RelevantProvenanceResources".
	IncludeAssociatedData []string
	// Patients are the patients to export, as "Patient/id" references, at
	// Patient or Group level.
	Patients []string
}

// parameters is p as a Parameters resource.
func (p ExportParams) parameters() []byte {
	type reference struct {
		Reference string `json:"reference"`
	}
	type parameter struct {
		Name           string     `json:"name"`
		ValueString    string     `json:"valueString,omitempty"`
		ValueInstant   string     `json:"valueInstant,omitempty"`
		ValueCode      string     `json:"valueCode,omitempty"`
		ValueReference *reference `json:"valueReference,omitempty"`
	}
	out := []parameter{}
	str := func(name, v string) {
		if v != "" {
			out = append(out, parameter{Name: name, ValueString: v})
		}
	}
	str("_type", strings.Join(p.Types, ","))
	if !p.Since.IsZero() {
		out = append(out, parameter{Name: "_since", ValueInstant: p.Since.UTC().Format(time.RFC3339Nano)})
	}
	str("_outputFormat", p.OutputFormat)
	for _, f := range p.TypeFilters {
		str("_typeFilter", f)
	}
	str("_elements", strings.Join(p.Elements, ","))
	for _, v := range p.IncludeAssociatedData {
		out = append(out, parameter{Name: "includeAssociatedData", ValueCode: v})
	}
	for _, ref := range p.Patients {
		out = append(out, parameter{Name: "patient", ValueReference: &reference{ref}})
	}
	b, _ := json.Marshal(struct {
		ResourceType string      `json:"resourceType"`
		Parameter    []parameter `json:"parameter"`
	}{"Parameters", out})
	return b
}

// PostExport kicks off a bulk export with a POST of its parameters in a
// Parameters body, as Bulk Data allows and as naming patients requires:
// endpoint is the operation's URL without parameters, such as
// base+"/Patient/$export" or base+"/Group/"+id+"/$export". The server must
// accept it to run asynchronously (202); anything else is an
// [*ExportError].
func PostExport(ctx context.Context, hc *http.Client, endpoint string, p ExportParams) (*Export, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(p.parameters()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	return startExport(hc, req)
}

// startExport sends a kick-off and reads the server's acceptance.
func startExport(hc *http.Client, req *http.Request) (*Export, error) {
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return nil, exportError(resp)
	}
	status := resp.Header.Get("Content-Location")
	if status == "" {
		return nil, errors.New("client: bulk export: the server accepted the export without a status URL")
	}
	return &Export{Status: status, hc: hc}, nil
}

// Wait polls the export's status until its manifest, waiting between
// polls as the server asks (Retry-After) or, when it does not, as MinPoll
// and MaxPoll say; ctx bounds the whole. A failed export is an
// [*ExportError].
func (e *Export) Wait(ctx context.Context) (*Manifest, error) {
	backoff, most := e.MinPoll, e.MaxPoll
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	if most <= 0 {
		most = 30 * time.Second
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.Status, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			var m Manifest
			err := json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("client: bulk export: the manifest: %w", err)
			}
			return &m, nil
		case http.StatusAccepted:
			e.Progress = resp.Header.Get("X-Progress")
			wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			resp.Body.Close()
			if !ok {
				wait, backoff = backoff, min(2*backoff, most)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		default:
			err := exportError(resp)
			resp.Body.Close()
			return nil, err
		}
	}
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// Cancel asks the server to stop the export, or to delete its files.
func (e *Export) Cancel(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, e.Status, nil)
	if err != nil {
		return err
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return exportError(resp)
	}
	return nil
}

// Download opens one of a manifest's files, NDJSON; the caller closes it.
// Read it with [Resources].
func Download(ctx context.Context, hc *http.Client, f ExportFile) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/fhir+ndjson")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, exportError(resp)
	}
	return resp.Body, nil
}

// MaxLine bounds the size of one resource Resources reads.
const MaxLine = 64 << 20

// Resources reads an NDJSON file one resource at a time (blank lines
// skipped), each a copy the caller may keep. It stops at the first error: a
// line that is not one JSON value, longer than [MaxLine], or a failed read
// (a transfer cut short, which a proxy does when the server sent what it
// could not judge).
func Resources(r io.Reader) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			if !json.Valid(line) {
				yield(nil, errors.New("client: bulk export: a line of the file is not JSON"))
				return
			}
			if !yield(bytes.Clone(line), nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(nil, err)
		}
	}
}
