package smart

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

func readLimited(w http.ResponseWriter, r *http.Request, n int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, n))
}

// parseQueryStrict decodes a query or form body. Like url.ParseQuery it
// refuses a raw ";" (a separator some servers honour, so a smuggling
// differential); unlike it, it also refuses a parameter given twice (RFC 6749
// §3.1: "MUST NOT be included more than once") and invalid UTF-8.
func parseQueryStrict(raw string) (map[string]string, error) {
	if strings.IndexByte(raw, ';') >= 0 {
		return nil, errors.New("';' is not a parameter separator")
	}
	out := map[string]string{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, errors.New("malformed parameter name")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, errors.New("malformed value of " + safeName(key))
		}
		if !utf8.ValidString(key) || !utf8.ValidString(val) {
			return nil, errors.New("parameters must be valid UTF-8")
		}
		if _, dup := out[key]; dup {
			return nil, errors.New("parameter " + safeName(key) + " is repeated")
		}
		out[key] = val
	}
	return out, nil
}

// safeName returns a parameter name fit for an error description.
func safeName(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "(unprintable)"
		}
	}
	return s
}
