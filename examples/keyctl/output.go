package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// A result is what a command prints when it is done: doc, as the JSON
// document of --json, or text, for people.
type result struct {
	doc  any
	text func(w io.Writer) error
}

// visible returns s as keyctl prints it for people: every rune that a
// terminal could act on, or that hides, reorders or breaks text, is
// replaced by its Go escape (\x1b, \n, \u202e...), and a backslash is
// doubled, so that an escape is never ambiguous. Escaped are control
// characters (C0 with ESC, BEL, tab and line breaks; DEL; C1), format
// characters (bidi overrides and isolates U+202A–U+202E and
// U+2066–U+2069, zero-width characters, the byte order mark), separators
// other than the ASCII space (U+00A0, U+2028, U+2029...), private-use and
// unassigned runes, and bytes that are not UTF-8 (as \xff). What stays is
// what strconv.IsPrint accepts: letters, marks, numbers, punctuation,
// symbols and the ASCII space. s is returned as it is when it needs no
// escape.
//
// Every text that keyctl prints goes through visible (printRow): names,
// owners, metadata, scopes, environments, origins, accounts, cursors,
// audit actors and details are written by tenants, through the
// management API, and must neither drive the operator's terminal nor
// forge a row or a column of a table.
func visible(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case needsEscape(r, size):
			q := strconv.QuoteRune(r) // '\x1b', '\u202e': Go's escape, quoted
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether visible escapes the rune r, decoded from
// size bytes.
func needsEscape(r rune, size int) bool {
	return r == '\\' || (r == utf8.RuneError && size == 1) || !strconv.IsPrint(r)
}

// printRow writes fields to w, each through visible, separated by sep and
// ended by a newline: exactly one line, whatever the fields hold. Tables
// pass "\t" to a tabwriter, which then sees exactly len(fields) cells.
func printRow(w io.Writer, sep string, fields ...string) error {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(visible(f))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonVisible escapes, in the JSON document doc, the runes that visible
// escapes and encoding/json leaves as they are (DEL, C1 controls, bidi
// overrides and other format characters, non-ASCII spaces): as \uXXXX,
// or a UTF-16 surrogate pair above U+FFFF, which decodes to the same
// string. encoding/json already escapes the C0 controls, U+2028 and
// U+2029, and replaces bytes that are not UTF-8. Every rune escaped here
// is inside a JSON string, since outside strings a document holds only
// ASCII punctuation, digits, letters and white space.
func jsonVisible(doc []byte) []byte {
	var out []byte
	for i := 0; i < len(doc); {
		r, size := utf8.DecodeRune(doc[i:])
		escape := r == 0x7f || (r >= utf8.RuneSelf && !strconv.IsPrint(r))
		if escape && out == nil {
			out = append(make([]byte, 0, len(doc)+16), doc[:i]...)
		}
		switch {
		case escape && r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, hi, lo)
		case escape:
			out = fmt.Appendf(out, `\u%04x`, r)
		case out != nil:
			out = append(out, doc[i:i+size]...)
		}
		i += size
	}
	if out == nil {
		return doc
	}
	return out
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
		if err := printRow(w, " ", k.View.Environment, string(k.View.Type), k.FullKey); err != nil {
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
	return result{doc: v, text: func(w io.Writer) error { return printRow(w, " ", words...) }}
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
			return printRow(w, "", "(no origin: browsers may not use publishable keys)")
		}
		for _, o := range s.AllowedOrigins {
			if err := printRow(w, "", o); err != nil {
				return err
			}
		}
		return nil
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
			_ = printRow(p.stderr, " ", "keyctl: writing output:", encErr.Error())
			return max(status, exitStorage)
		}
		return status
	}
	if res.text != nil {
		if werr := res.text(p.stdout); werr != nil {
			_ = printRow(p.stderr, " ", "keyctl: writing output:", werr.Error())
			return max(status, exitStorage)
		}
	}
	if err != nil {
		_ = printRow(p.stderr, " ", "keyctl:", message(err, status))
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
// whole document without doc, else beside doc's members. Strings are
// escaped by encoding/json and then by jsonVisible: the document holds no
// rune that a terminal acts on.
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
	return jsonVisible(append(out, '\n')), merr
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
	{apikey.ErrInvalidLimits, "invalid_limits"},
	{apikey.ErrInvalidTimeRange, "invalid_time_range"},
	{apikey.ErrInvalidCursor, "invalid_cursor"},
	{apikey.ErrInvalidLifetime, "invalid_lifetime"},
	{apikey.ErrBeyondLifetime, "beyond_lifetime"},
	{apikey.ErrInvalidImport, "invalid_request"},
	{apikey.ErrAccountSuspended, "account_suspended"},
	{apikey.ErrDefaultKeyNotDisableable, "rotate_first"},
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
