package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// A result is what a command prints when it is done: doc, as the JSON
// document of --json, or text, for people.
type result struct {
	doc  any
	text func(w io.Writer) error
}

// issuedDoc is a key shown in full, once: at creation, rotation or reveal.
type issuedDoc struct {
	FullKey string      `json:"full_key"`
	View    apikey.View `json:"view"`
}

func newIssuedDoc(k apikey.Key, v apikey.View) issuedDoc {
	return issuedDoc{FullKey: k.Reveal(), View: v}
}

// writeIssued writes the "<environment> <type> <key>" line of each key.
func writeIssued(w io.Writer, keys []issuedDoc) error {
	for _, k := range keys {
		if _, err := fmt.Fprintln(w, k.View.Environment, k.View.Type, k.FullKey); err != nil {
			return err
		}
	}
	return nil
}

// issuedResult is the result of one key shown in full.
func issuedResult(k apikey.Key, v apikey.View) result {
	doc := newIssuedDoc(k, v)
	return result{doc: doc, text: func(w io.Writer) error { return writeIssued(w, []issuedDoc{doc}) }}
}

// issuedList is the result of bootstrap: every key it issued.
func issuedList(issued []apikey.Issued) result {
	docs := make([]issuedDoc, len(issued))
	for i, k := range issued {
		docs[i] = newIssuedDoc(k.Key, k.View)
	}
	return result{
		doc: struct {
			Issued []issuedDoc `json:"issued"`
		}{docs},
		text: func(w io.Writer) error { return writeIssued(w, docs) },
	}
}

// viewLine is the result of a change to a key: its view, or one line of
// words for people.
func viewLine(v apikey.View, words ...string) result {
	return result{doc: v, text: func(w io.Writer) error {
		_, err := fmt.Fprintln(w, strings.Join(words, " "))
		return err
	}}
}

// withOrigins returns s with an empty list, never nil, of allowed origins,
// so that JSON shows [] and not null.
func withOrigins(s apikey.Settings) apikey.Settings {
	s.AllowedOrigins = nonNil(s.AllowedOrigins)
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// settingsResult is the result of origins: the environment's settings, or
// its allowed origins one per line.
func settingsResult(s apikey.Settings) result {
	s = withOrigins(s)
	return result{doc: s, text: func(w io.Writer) error {
		if len(s.AllowedOrigins) == 0 {
			_, err := fmt.Fprintln(w, "(no origin: browsers may not use publishable keys)")
			return err
		}
		_, err := fmt.Fprintln(w, strings.Join(s.AllowedOrigins, "\n"))
		return err
	}}
}

// auditEvent is an audit event with the displayable prefix of its key.
type auditEvent struct {
	apikey.Event
	// Prefix is the key's displayable prefix; empty when the event names
	// no key.
	Prefix string `json:"prefix,omitempty"`
}

// usageResult is the result of asking for help.
func usageResult(text string) result {
	return result{
		doc: struct {
			Usage string `json:"usage"`
		}{text},
		text: func(w io.Writer) error { _, err := io.WriteString(w, text); return err },
	}
}

// printer writes results and errors: as text, results on stdout and
// errors on stderr; or, with --json, exactly one JSON document on stdout.
type printer struct {
	stdout, stderr io.Writer
	json           *bool // --json, read when printing: it may come after the command
}

// help prints a help text and returns exit status 0.
func (p *printer) help(text string) int { return p.finish(usageResult(text), nil) }

// fail prints err and returns its exit status.
func (p *printer) fail(err error) int { return p.finish(result{}, err) }

// finish prints what a command returned and returns the exit status.
func (p *printer) finish(res result, err error) int {
	status, code := classify(err)
	if *p.json {
		doc, encErr := jsonDocument(res.doc, err, code)
		if encErr == nil {
			_, encErr = p.stdout.Write(doc)
		}
		if encErr != nil {
			fmt.Fprintln(p.stderr, "keyctl: writing output:", encErr)
			return max(status, exitStorage)
		}
		return status
	}
	if res.text != nil {
		if werr := res.text(p.stdout); werr != nil {
			fmt.Fprintln(p.stderr, "keyctl: writing output:", werr)
			return max(status, exitStorage)
		}
	}
	if err != nil {
		fmt.Fprintln(p.stderr, "keyctl:", message(err, status))
		var u usageError
		if errors.As(err, &u) && u.usage != "" {
			fmt.Fprint(p.stderr, "\n"+u.usage)
		}
	}
	return status
}

// jsonError is the "error" member of a JSON document.
type jsonError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// jsonDocument encodes doc and, if err is set, an "error" member: the
// whole document without doc, else beside doc's members.
func jsonDocument(doc any, err error, code string) ([]byte, error) {
	v := doc
	if err != nil {
		e := jsonError{Code: code, Message: message(err, 0)}
		v = struct {
			Error jsonError `json:"error"`
		}{e}
		if doc != nil { // bootstrap's keys issued before it failed
			b, merr := json.Marshal(doc)
			members := map[string]any{}
			if merr == nil {
				merr = json.Unmarshal(b, &members)
			}
			if merr != nil {
				return nil, merr
			}
			members["error"] = e
			v = members
		}
	}
	out, merr := json.MarshalIndent(v, "", "  ")
	return append(out, '\n'), merr
}

// message is the text of err for people: what it says, with a hint where
// one helps.
func message(err error, status int) string {
	msg := err.Error()
	switch {
	case errors.Is(err, exampledb.ErrNoDatabase):
		return strings.TrimPrefix(msg, "exampledb: ") + "; keyctl bootstrap creates one (with the same --db)"
	case status == exitStorage:
		return "storage error: " + msg
	}
	return msg
}

// codes are the --json error codes of the refusals of package apikey: the
// management API's (package middleware/admin), so that a script reads the
// same code from either.
var codes = []struct {
	err  error
	code string
}{
	{apikey.ErrForbidden, "role_not_allowed"},
	{apikey.ErrNotFound, "not_found"},
	{apikey.ErrInvalidKeyID, "invalid_key_id"},
	{apikey.ErrUnknownEnvironment, "unknown_environment"},
	{apikey.ErrInvalidEnvironment, "invalid_environment"},
	{apikey.ErrInvalidKeyType, "invalid_key_type"},
	{apikey.ErrInvalidScope, "invalid_scope"},
	{apikey.ErrScopesRequired, "scopes_required"},
	{apikey.ErrInvalidOrigin, "invalid_origin"},
	{apikey.ErrInvalidName, "invalid_name"},
	{apikey.ErrInvalidExpiry, "invalid_expiry"},
	{apikey.ErrGraceOutOfRange, "grace_out_of_range"},
	{apikey.ErrGraceRequired, "grace_required"},
	{apikey.ErrDefaultKeyNotRevocable, "rotate_first"},
	{apikey.ErrAlreadyRevoked, "already_revoked"},
	{apikey.ErrAlreadyRotated, "already_rotated"},
	{apikey.ErrNotRotated, "not_rotated"},
	{apikey.ErrKeyExpired, "key_expired"},
	{apikey.ErrAlreadyBootstrapped, "already_bootstrapped"},
	{apikey.ErrNotRevealable, "not_revealable"},
	{apikey.ErrConflict, "conflict"},
}

// classify returns the exit status of err and its --json code: 0 and ""
// for nil; 2 "usage" (or a more precise code) for a usage error; 1 for a
// refusal by the rules of package apikey; 3 for a missing database
// ("no_database") and any other error ("storage_error").
func classify(err error) (int, string) {
	var u usageError
	switch {
	case err == nil:
		return exitOK, ""
	case errors.As(err, &u):
		if u.code != "" {
			return exitUsage, u.code
		}
		return exitUsage, "usage"
	case apikey.IsRequestError(err):
		for _, c := range codes {
			if errors.Is(err, c.err) {
				return exitRefused, c.code
			}
		}
		return exitRefused, "refused"
	case errors.Is(err, exampledb.ErrNoDatabase):
		return exitStorage, "no_database"
	}
	return exitStorage, "storage_error"
}
