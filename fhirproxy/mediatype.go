package fhirproxy

import (
	"mime"
	"net/http"
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
