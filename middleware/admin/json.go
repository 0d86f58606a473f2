package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
)

// duration is a time.Duration written in JSON as a Go duration string, such
// as "24h" or "90m".
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errNotDuration
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errNotDuration
	}
	*d = duration(v)
	return nil
}

var errNotDuration = errors.New("not a duration")

// decode reads exactly one JSON object into v, a pointer to a struct whose
// fields all have JSON names.
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
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&members); err != nil {
		return invalid(jsonError(err))
	}
	if members == nil {
		return invalid("want a JSON object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("malformed JSON: one object only")
	}
	return decodeMembers(members, v)
}

// decodeMembers decodes each member of an object into the field of v with
// its JSON name, matched exactly (no case folding), and names the field at
// fault, never its value: a client may have pasted a key anywhere. A
// member that names no field is refused without repeating its name.
func decodeMembers(members map[string]json.RawMessage, v any) error {
	rv := reflect.ValueOf(v).Elem()
	names := make([]string, rv.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
	}
	for name := range members {
		if !slices.Contains(names, name) {
			if len(names) == 0 {
				return invalid("unknown field: want an empty object, or no body")
			}
			return invalid(`unknown field: want "` + strings.Join(names, `", "`) + `"`)
		}
	}
	for i, name := range names {
		raw, ok := members[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, rv.Field(i).Addr().Interface()); err != nil {
			return invalid(name + ": " + want(rv.Type().Field(i).Type))
		}
	}
	return nil
}

// want says what a field of type t takes.
func want(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[duration]():
		return `want a duration such as "24h" or "90m"`
	case reflect.TypeFor[time.Time]():
		return `want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`
	case reflect.TypeFor[apikey.KeyType]():
		return `want "server" or "client"`
	}
	switch {
	case t.Kind() == reflect.String:
		return "want a string"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "want an array of strings"
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.String:
		return "want an object whose values are strings"
	}
	return "wrong type" // a field of a type of our own that want does not describe yet
}

// jsonError describes an error decoding the body as an object without
// echoing the input.
func jsonError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "malformed JSON: syntax error at byte " + strconv.FormatInt(syntax.Offset, 10)
	case errors.As(err, &typ):
		return "want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end"
	}
	return "malformed JSON"
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body) // the client went away, or a bug that tests catch
}
