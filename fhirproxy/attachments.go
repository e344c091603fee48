package fhirproxy

import (
	"strings"

	dtpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// attachmentURLs are the urls of the attachments in a resource typed by
// validR4, anywhere in it (contained resources and extensions too), that
// may name a record on this server: a DocumentReference's content, a
// Media's, a Patient's photo. A viewer fetches the document from its url,
// so one naming another patient's Binary would show that patient's
// document as this record's; and a write that passes when it names a
// record and fails when it names none would tell that the record exists.
// So checkReferencedRecords reads these urls as references. A url with a
// scheme but no authority (cid:, mailto:, data:) names nothing here and is
// left out; a urn (a Bundle entry's fullUrl) is not. A contained resource
// the proxy cannot read counts as an odd url.
func attachmentURLs(m protoreflect.Message) []string {
	var urls []string
	walk(m, func(_ protoreflect.FieldDescriptor, sub protoreflect.Message) bool {
		if sub.Interface() == unreadable {
			urls = append(urls, "\x00unreadable")
			return false
		}
		a, ok := sub.Interface().(*dtpb.Attachment)
		if u := a.GetUrl().GetValue(); ok && u != "" && mayNameRecord(u) {
			urls = append(urls, u)
		}
		return !ok
	})
	return urls
}

// mayNameRecord reports whether an attachment's url may name a record on
// this server: it is relative, absolute with an authority, or a urn.
func mayNameRecord(u string) bool {
	scheme, _, ok := strings.Cut(u, ":")
	return !ok || scheme == "" || strings.ContainsAny(scheme, "/?#") || strings.EqualFold(scheme, "urn") || strings.Contains(u, "://")
}
