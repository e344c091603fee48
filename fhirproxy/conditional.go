package fhirproxy

import (
	"net/http"
	"strings"
)

// Conditional reads. An upstream answers If-None-Match or If-Modified-Since
// with 304 and no body, which the proxy cannot judge: passed on, a 304 for
// another patient's record would tell that it exists, and at which version.
// So when a response is inspected the conditions are not forwarded; the
// proxy evaluates them itself on the full answer once it has judged the
// resource visible (a 200 is always a correct answer to a conditional
// read).

// notModified reports whether a client's conditional read is answered by
// 304 given the response's validators: If-None-Match by weak comparison of
// entity tags (RFC 9110 13.1.2), else If-Modified-Since against
// Last-Modified.
func notModified(req, resp http.Header) bool {
	if inm := req["If-None-Match"]; len(inm) > 0 {
		etag := header(resp, "Etag")
		return etag != "" && matchesETag(strings.Join(inm, ","), etag)
	}
	if ims := header(req, "If-Modified-Since"); ims != "" {
		since, err1 := http.ParseTime(ims)
		modified, err2 := http.ParseTime(header(resp, "Last-Modified"))
		return err1 == nil && err2 == nil && !modified.After(since)
	}
	return false
}

// matchesETag reports whether a list of entity tags (or "*") holds etag,
// comparing weakly: W/"1" matches "1".
func matchesETag(list, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// answerNotModified turns a judged 200 into the 304 its conditions ask for.
func answerNotModified(resp *http.Response) {
	resp.StatusCode, resp.Status = http.StatusNotModified, "304 Not Modified"
	resp.Body, resp.ContentLength = http.NoBody, 0
	delete(resp.Header, "Content-Length")
	delete(resp.Header, "Content-Type")
}
