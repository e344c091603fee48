package fhirproxy

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonpatch"
	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// jsonPatchType is the media type of a JSON Patch (RFC 6902).
const jsonPatchType = "application/json-patch+json"

// readPatch reads a patch body of the given media type strictly, or
// refuses it: a JSON Patch, a FHIRPath Patch (a Parameters resource), and
// nothing else (an XML Patch, say, would go upstream unread). It reports
// whether the patch spares the labels: a JSON Patch none of whose changing
// operations touches the document's root, meta or contained (where its
// labels, and those of its contained resources, are). A FHIRPath Patch's
// paths are expressions the proxy does not evaluate: it spares nothing.
func readPatch(contentType string, body []byte) (sparesLabels bool, ref *refusal) {
	bad := func(msg string) (bool, *refusal) { return false, refuse(http.StatusBadRequest, "invalid", msg) }
	mt, ref := bodyType(contentType)
	if ref != nil {
		return false, ref
	}
	switch {
	case mt == jsonPatchType:
		spares, err := jsonPatchSpares(body)
		if err != nil {
			return bad("the patch must be one strict JSON Patch: an array of operations, each with an op, a path and the members its op requires (from, value), its member names each in one case")
		}
		return spares, nil
	case jsonMediaType(mt):
		pr, err := parseResource(body)
		if err != nil || pr.ResourceType != "Parameters" {
			return bad("a FHIRPath Patch must be one strict JSON Parameters resource")
		}
		return false, nil
	}
	return false, refuse(http.StatusUnsupportedMediaType, "not-supported", "a patch is a JSON Patch ("+jsonPatchType+") or a FHIRPath Patch (application/fhir+json)")
}

// readEntryPatch reads a batch entry's patch: a Binary holding a JSON Patch
// (its data, base64), or a Parameters resource holding a FHIRPath Patch.
//
// It returns the patch itself too (the Binary's data decoded; the
// Parameters resource as it is), which is what the references are read
// from.
func readEntryPatch(resource []byte) (patch []byte, sparesLabels bool, ref *refusal) {
	var typ, contentType, data string
	s := jsonstrict.NewScanner(resource)
	err := s.Object(func(name []byte) error {
		switch string(name) {
		case "resourceType":
			return readString(s, &typ)
		case "contentType":
			return readString(s, &contentType)
		case "data":
			return readString(s, &data)
		}
		return s.Skip()
	})
	switch {
	case err != nil:
	case typ == "Parameters":
		sparesLabels, ref = readPatch(fhirJSONType, resource)
		return resource, sparesLabels, ref
	case typ == "Binary":
		if body, err := base64.StdEncoding.DecodeString(data); err == nil {
			sparesLabels, ref = readPatch(contentType, body)
			return body, sparesLabels, ref
		}
	}
	return nil, false, refuse(http.StatusBadRequest, "invalid", "a batched patch is a Binary holding a JSON Patch, or a Parameters resource holding a FHIRPath Patch")
}

// jsonPatchSpares reads a JSON Patch strictly (jsonpatch.Parse) and
// reports whether its operations spare the labels: no add, remove,
// replace, move or copy whose path (or a move's from) is the root, or
// below meta or contained (test operations change nothing).
func jsonPatchSpares(body []byte) (bool, error) {
	patch, err := jsonpatch.Parse(body)
	if err != nil {
		return false, err
	}
	spares := true
	for _, op := range patch {
		switch op.Op {
		case "add", "replace", "remove", "copy": // copy writes at path only
			spares = spares && !labelPointer(op.Path)
		case "move": // removes from, adds at path
			spares = spares && !labelPointer(op.Path) && !labelPointer(op.From)
		}
	}
	return spares, nil
}

// labelPointer reports whether a JSON Pointer is the document itself, or
// is below its meta or contained member.
func labelPointer(p string) bool {
	if p == "" {
		return true
	}
	first, _, _ := strings.Cut(p[1:], "/")
	first = jsonpatch.Unescape(first)
	return first == "meta" || first == "contained"
}
