package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// duration is a time.Duration written in JSON as a Go duration string, such
// as "24h" or "90m".
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "24h"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`want a duration string such as "24h"`)
	}
	*d = duration(v)
	return nil
}

// decode reads exactly one JSON object with known fields into v.
func decode(r *http.Request, v any) error { return decodeBody(r, v, false) }

// decodeOptional is decode for a body that may be empty.
func decodeOptional(r *http.Request, v any) error { return decodeBody(r, v, true) }

func decodeBody(r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errTooLarge
		}
		return invalid("reading the body failed")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return invalid("a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("malformed JSON: " + jsonError(err))
	}
	if dec.More() {
		return invalid("malformed JSON: one object only")
	}
	return nil
}

// jsonError describes a decoding error without echoing the input (a
// client may have pasted a key anywhere).
func jsonError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "syntax error at byte " + strconv.FormatInt(syntax.Offset, 10)
	case errors.As(err, &typ):
		return "wrong type for field " + typ.Field // a field of our own types
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	}
	return "cannot decode"
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body) // the client went away, or a bug that tests catch
}
