package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	return decodeFields("", members, v)
}

// decodeFields is decodeMembers for the object at path ("" for the body,
// "limits." for a member of it). A field whose type is a struct of ours
// (see object) is decoded member by member too, so that an error names the
// nested field, "limits.rate.requests"; null leaves it zero.
func decodeFields(path string, members map[string]json.RawMessage, v any) error {
	rv := reflect.ValueOf(v).Elem()
	names := make([]string, rv.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
	}
	for name := range members {
		if !slices.Contains(names, name) {
			in := ""
			if path != "" {
				in = " in " + strings.TrimSuffix(path, ".")
			}
			if len(names) == 0 {
				return invalid("unknown field" + in + ": want an empty object, or no body")
			}
			return invalid("unknown field" + in + `: want "` + strings.Join(names, `", "`) + `"`)
		}
	}
	for i, name := range names {
		raw, ok := members[name]
		if !ok {
			continue
		}
		field := rv.Field(i)
		if t, ok := object(field.Type()); ok {
			var sub map[string]json.RawMessage
			if err := json.Unmarshal(raw, &sub); err != nil {
				return invalid(path + name + ": want an object")
			}
			if sub == nil { // null
				continue
			}
			ptr := reflect.New(t)
			if err := decodeFields(path+name+".", sub, ptr.Interface()); err != nil {
				return err
			}
			if field.Kind() == reflect.Pointer {
				field.Set(ptr)
			} else {
				field.Set(ptr.Elem())
			}
			continue
		}
		if err := json.Unmarshal(raw, field.Addr().Interface()); err != nil {
			return invalid(path + name + ": " + want(field.Type()))
		}
	}
	return nil
}

// object returns the struct type of a field of type t (or *t) that
// decodeFields decodes member by member: a struct that does not decode
// itself (time.Time does).
func object(t reflect.Type) (reflect.Type, bool) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	unmarshaler := reflect.TypeFor[json.Unmarshaler]()
	return t, t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshaler)
}

// number is a JSON number as written, "" when absent or null. A JSON
// string is not a number, even one that holds digits.
type number string

func (n *number) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9'):
		*n = number(b)
		return nil
	}
	return errNotNumber
}

var errNotNumber = errors.New("not a number")

// int64 returns n as an integer for the field at path: 0 when absent;
// beyond the range of an int64, the nearest int64 (out of every bound the
// field has, so refused with its name); with a fraction or an exponent, an
// error wrapping apikey.ErrInvalidLimits that names path.
func (n number) int64(path string) (int64, error) {
	if n == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && n[0] == '-':
		return math.MinInt64, nil
	case errors.Is(err, strconv.ErrRange):
		return math.MaxInt64, nil
	case err != nil:
		return 0, fmt.Errorf("%w: %s must be an integer (no fraction or exponent)", apikey.ErrInvalidLimits, path)
	}
	return v, nil
}

// int is int64 for a field of type int.
func (n number) int(path string) (int, error) {
	v, err := n.int64(path)
	return int(min(max(v, math.MinInt), math.MaxInt)), err
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
	case reflect.TypeFor[number]():
		return "want a number"
	}
	switch {
	case t.Kind() == reflect.String:
		return "want a string"
	case t.Kind() == reflect.Bool:
		return "want true or false"
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
