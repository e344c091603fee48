package fhirproxy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// A Binary in its native form (FHIR R4 http.html#binary). Apps show a
// document's content by reading its Binary with the content's own media
// type in Accept (a PDF, a C-CDA), and store one by sending the bytes
// with their Content-Type and the record they belong to in
// X-Security-Context. The proxy never relays what it cannot judge: it
// reads and writes the Binary as FHIR JSON upstream, judged as any other
// (its labels, its securityContext, the compartment), and converts at its
// edge. A native read answers with the judged resource's decoded data; a
// native write becomes the FHIR JSON Binary it describes, checked as a
// JSON one would be.

// nativeCSP is the Content-Security-Policy of a Binary's native content:
// whatever its media type claims (text/html, image/svg+xml), it runs
// nothing in a browser that opens it.
var nativeCSP = []string{"default-src 'none'; frame-ancestors 'none'; sandbox"}

// fhirFormats are the media types (and _format shorthands) that ask for a
// FHIR resource rather than a Binary's native content.
var fhirFormats = [...]string{"application/fhir+json", "application/json", "json", "application/fhir+xml",
	"application/xml", "text/xml", "xml", "application/json+fhir", "application/xml+fhir"}

// wantsNative reports whether a read of a Binary asks for its native
// content: an Accept header with media ranges, none of them a FHIR format
// (nor anything the proxy cannot parse), and no parameter that selects
// FHIR elements or a format. Without one the answer is FHIR JSON.
func wantsNative(in *Interaction, accept []string) bool {
	if in.Type != "Binary" || in.Kind != Read && in.Kind != VRead || len(accept) == 0 {
		return false
	}
	for _, p := range in.Params {
		switch p.Name {
		case "_format", "_summary", "_elements":
			return false
		}
	}
	named := false // a media range, not an empty header
	for _, v := range accept {
		for r := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(r) == "" {
				continue
			}
			named = true
			if mt, _, err := mime.ParseMediaType(r); err != nil || slices.Contains(fhirFormats[:], mt) {
				return false
			}
		}
	}
	return named
}

// nativeUpload reports whether a create or update of a Binary sends its
// native content: a Content-Type that is not JSON (a FHIR resource) nor a
// FHIR format the proxy refuses anyway.
func nativeUpload(in *Interaction, contentType string) bool {
	if in.Type != "Binary" || in.Kind != Create && in.Kind != Update || strings.TrimSpace(contentType) == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	// (Not one: bodyType answers 415.)
	return err == nil && strings.Contains(mt, "/") && !slices.Contains(fhirFormats[:], mt)
}

// binaryResource is the FHIR JSON Binary a native upload describes: its
// media type (canonical, parameters kept: a charset is the content's),
// the record named by its one X-Security-Context header, and the data.
func binaryResource(in *Interaction, contentType string, securityContext []string, data []byte) ([]byte, *refusal) {
	ct, ok := mediaType(contentType)
	if !ok {
		return nil, refuse(http.StatusUnsupportedMediaType, "not-supported", "the Content-Type is not understood")
	}
	res := map[string]any{"resourceType": "Binary", "contentType": ct, "data": base64.StdEncoding.EncodeToString(data)}
	if in.ID != "" { // an update's (a conditional one's is the match's: resolveConditional)
		res["id"] = in.ID
	}
	switch len(securityContext) {
	case 0:
	case 1:
		v := securityContext[0]
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			// (A reference is printable ASCII: a URL's other characters are
			// percent-encoded. Anything else would not reach the server as
			// sent: JSON cannot carry bytes that are not UTF-8.)
			return nil, refuse(http.StatusBadRequest, "invalid", "X-Security-Context is one reference (Type/id), in printable ASCII")
		}
		res["securityContext"] = map[string]any{"reference": v}
	default:
		return nil, refuse(http.StatusBadRequest, "invalid", "X-Security-Context is given once")
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "invalid", "the content cannot be written as a Binary")
	}
	return b, nil
}

// errNotBinary: a native read answered with something the proxy cannot
// turn into a Binary's content.
var errNotBinary = errors.New("fhirproxy: the answer is not a Binary with content")

// nativeContent turns a judged Binary (FHIR JSON) into its native form:
// the decoded data, its media type (application/octet-stream where the
// resource's is missing or not one), and its securityContext reference.
// Member names are matched exactly, as the inspection matched them.
func nativeContent(body []byte) (data []byte, contentType, context string, err error) {
	s := jsonstrict.NewScanner(body)
	var typ, ct, b64 []byte
	err = s.Object(func(name []byte) error {
		var err error
		switch string(name) {
		case "resourceType":
			typ, err = s.String()
		case "contentType":
			ct, err = s.String()
		case "data":
			b64, err = s.String()
		case "securityContext":
			if s.Kind() != '{' {
				return s.Skip()
			}
			return s.Object(func(name []byte) error {
				if string(name) != "reference" || s.Kind() != '"' {
					return s.Skip()
				}
				ref, err := s.String()
				context = string(ref)
				return err
			})
		default:
			err = s.Skip()
		}
		return err
	})
	if err != nil || s.End() != nil || string(typ) != "Binary" {
		return nil, "", "", errNotBinary
	}
	data, err = base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1 // base64Binary may be wrapped
		}
		return r
	}, string(b64)))
	if err != nil {
		return nil, "", "", errNotBinary
	}
	contentType = "application/octet-stream"
	if f, ok := mediaType(string(ct)); ok {
		contentType = f
	}
	return data, contentType, context, nil
}

// mediaType is a Content-Type in canonical form (type/subtype, lower case,
// its parameters kept, in printable ASCII), or false for one that is not.
func mediaType(v string) (string, bool) {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || !strings.Contains(mt, "/") {
		return "", false
	}
	f := mime.FormatMediaType(mt, params)
	if f == "" || strings.ContainsFunc(f, func(r rune) bool { return r < ' ' || r >= 0x7f }) {
		return "", false
	}
	return f, true
}
