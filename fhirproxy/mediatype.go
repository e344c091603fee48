package fhirproxy

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// The proxy reads FHIR R4 JSON in UTF-8, and a body goes upstream labelled
// as what the proxy read it as. A media type's parameters can tell a
// server to read the same bytes otherwise: charset=utf-7 turns +ACI- in
// a string into a quote, and with it the members the proxy checked into
// others; fhirVersion=1.0 makes a server that holds several versions read
// the body as DSTU2, where a Condition's patient is "patient", not the
// "subject" the proxy judged. So a parameter that would change the
// reading is refused, and what goes upstream is the bare media type.

// fhirJSONType is what a body the proxy read as a FHIR resource goes
// upstream as, when the client named no type.
const fhirJSONType = "application/fhir+json"

// bodyType reads a request body's Content-Type: the media type, lower
// case, without parameters ("" when there is none), or a 415 for a type
// the proxy cannot parse or a parameter that changes how the body reads.
func bodyType(ct string) (string, *refusal) {
	if strings.TrimSpace(ct) == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", refuse(http.StatusUnsupportedMediaType, "not-supported", "the Content-Type is not understood")
	}
	if ref := sameReading(params); ref != nil {
		return "", ref
	}
	return mt, nil
}

// sameReading allows the parameters a JSON media type may carry that do
// not change how the body reads: charset=utf-8 (JSON's only encoding, RFC
// 8259 §8.1) and an R4 fhirVersion. mime.ParseMediaType has lowered the
// names.
func sameReading(params map[string]string) *refusal {
	for k, v := range params {
		switch {
		case k == "charset" && strings.EqualFold(v, "utf-8"):
		case k == "fhirversion" && (v == "4.0" || strings.HasPrefix(v, "4.0.")):
		default:
			return refuse(http.StatusUnsupportedMediaType, "not-supported",
				"the proxy reads FHIR R4 JSON in UTF-8: the media type parameter "+k+" is not supported with that value")
		}
	}
	return nil
}

// jsonOnly refuses a request, or a batch entry, whose _format asks for
// anything but FHIR R4 JSON: only that is read, and served.
func jsonOnly(params []Param) *refusal {
	for _, f := range values(params, "_format") {
		mt, ps, err := mime.ParseMediaType(f)
		if err != nil || mt != "json" && mt != "application/json" && mt != fhirJSONType {
			return refuse(http.StatusNotAcceptable, "not-supported", "only FHIR R4 JSON is served (_format json, application/json or application/fhir+json)")
		}
		if ref := sameReading(ps); ref != nil {
			ref.status, ref.msg = http.StatusNotAcceptable, "only FHIR R4 JSON in UTF-8 is served: _format's parameters ask for another"
			return ref
		}
	}
	return nil
}

// servedTypes are the media types the proxy answers as: FHIR R4 JSON under
// its name, plain JSON, and the DSTU2 name many clients still send
// (application/json+fhir, which R4 servers read as the same JSON).
var servedTypes = [...]string{fhirJSONType, "application/json", "application/json+fhir"}

// acceptsJSON reports whether an Accept header admits an answer the proxy
// serves (servedTypes), read as RFC 9110 §12.5.1 reads it: for each served
// type, the most specific media range that matches it (the type with
// parameters, the type, its top-level type/*, */*) gives its quality, and
// one served type with a quality above 0 is enough. A range whose
// parameters would change the reading (sameReading: another charset or
// fhirVersion) matches nothing, and a range that does not parse is left
// out; a header with no range left admits everything, as no header does.
func acceptsJSON(accept []string) bool {
	best := [len(servedTypes)]struct {
		rank int // 0: no range matched yet; then */*, type/*, type, type with parameters
		q    float64
	}{}
	ranges := 0
	for _, v := range accept {
		for rng := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(rng) == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(rng)
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil || q < 0 || q > 1 {
					continue
				}
				delete(params, "q")
			}
			ranges++
			for i, served := range servedTypes {
				rank := 0
				switch {
				case mt == "*/*":
					rank = 1
				case mt == "application/*":
					rank = 2
				case mt == served && len(params) == 0:
					rank = 3
				case mt == served && sameReading(params) == nil:
					rank = 4
				}
				if b := &best[i]; rank > b.rank || rank > 0 && rank == b.rank && q > b.q {
					b.rank, b.q = rank, q
				}
			}
		}
	}
	if ranges == 0 {
		return true
	}
	for _, b := range best {
		if b.rank > 0 && b.q > 0 {
			return true
		}
	}
	return false
}

// acceptable refuses a request whose Accept header admits nothing the
// proxy answers with (acceptsJSON): 406, as FHIR has a server answer a
// format it cannot produce (http.html#mime-type), rather than JSON the
// client said it would not take. _format, already held to JSON (jsonOnly),
// overrides the header; a Binary read for its native content (wantsNative)
// and an export file (NDJSON) answer with other types.
func acceptable(in *Interaction, accept []string) *refusal {
	if len(accept) == 0 || in.Kind == ExportFile || len(values(in.Params, "_format")) > 0 || wantsNative(in, accept) || acceptsJSON(accept) {
		return nil
	}
	return refuse(http.StatusNotAcceptable, "not-supported", "the Accept header admits no format the proxy serves: FHIR R4 JSON (application/fhir+json or application/json)")
}
