package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// globalFlagsHelp lists the global flags, for usage and every command's
// help.
const globalFlagsHelp = `Global flags, before or after the command:
  --db FILE|URL    SQLite file, or a postgres:// URL (default keystile.db)
  --actor NAME     actor name recorded in audit events (default keyctl)
  --account ID     the account to act in: the service's customer id (default
                   "default"); '*' acts across accounts (KEY commands, accounts)
  --json           print one JSON document on stdout, errors included
`

// usage is what "keyctl help" prints. The package documentation shows it
// too (TestUsageInDoc).
const usage = `usage: keyctl [--db FILE|URL] [--actor NAME] [--account ID] [--json] COMMAND [ARGS]
       keyctl help [COMMAND]     or: keyctl COMMAND --help

` + globalFlagsHelp + `
Commands that change keys or settings (as an owner; each is an audit event):
  bootstrap [ENV...]
      create environments, each with a default server key and publishable key,
      and print their keys; no ENV: production staging development, skipping
      those that exist. The only command that creates a database.
  create ENV server --scopes SCOPES [--expires 24h] [--name NAME] [--owner ID] [--metadata K=V,...]
  create ENV client [--expires 24h] [--name NAME] [--owner ID] [--metadata K=V,...]
      create an extra key and print it. SCOPES: customers:write,orders:read,...
      or "*" for full access. --owner names whom it is issued to.
  import ACCOUNT ENV server --digest HEX --scopes SCOPES [--expires 720h] [--name NAME] [--owner ID] [--metadata K=V,...]
  import ACCOUNT ENV client --digest HEX [--expires 720h] [--name NAME] [--owner ID] [--metadata K=V,...]
      import a key issued before keystile into ACCOUNT (needs --account '*') by the
      SHA-256 digest of its key string (hex) and print its prefix; rotate it to a
      keystile key.
  rotate KEY --grace DURATION
  rotate ENV server|client --grace DURATION
      replace a key (or ENV's default key of that type) and print the new one.
      DURATION is required: 0s ends the old key now, else up to 8760h.
  grace KEY DURATION
      change a rotated key's grace period, counted from its rotation.
  revoke KEY
      revoke a key at once and for good (a default key must be rotated first).
  scopes KEY SCOPE...
      replace the scopes of a server key that is not a default key.
  origins ENV ORIGIN...
  origins ENV --clear
      replace, or clear, the web origins allowed to use ENV's publishable keys:
      none admits no browser, '*' (quoted) admits every origin.
  owner KEY ID
  owner KEY --clear
      name whom a key is issued to, or nobody.
  owner revoke OWNER
      revoke every key issued to OWNER, in every environment, at once (default
      keys are skipped and named: rotate them first).
  owner limits OWNER [--rate N/WINDOW [--burst N]] [--quota N [--refill N/PERIOD]]
  owner limits OWNER --clear
      replace, or remove, the rate limit and quota that all of OWNER's keys share
      (without flags: show them; that only reads).
  rename KEY NAME
  rename KEY --clear
      rename a key, or remove its name.
  metadata KEY NAME=VALUE...
  metadata KEY --clear
      replace a key's metadata (up to 16 pairs; never a secret).
  limits KEY [--rate N/WINDOW] [--burst N] [--quota N] [--refill N/day|month] [--allow-ip CIDR]...
  limits KEY --clear
      replace a key's limits (what no flag sets, the key no longer has), or
      remove them: --rate 100/1m --burst 20, --quota 10000 --refill 10000/month,
      --allow-ip 10.0.0.0/8 (repeatable; server keys only).
  lifetime ENV [--default-expiry DURATION] [--max-lifetime DURATION]
  lifetime ENV --clear
      replace the lifetime policy of ENV's non-default keys (what no flag sets,
      the policy no longer has), or remove it: --default-expiry 720h is the
      expiry of a key created without one, --max-lifetime 8760h the longest a
      key may live.
  close ACCOUNT
      close an account: revoke every key of every environment of it, default
      keys included; it takes no new key.
  disable KEY
      switch a key off until it is enabled: it is refused (a default key must
      be rotated first); its expiry keeps running.
  enable KEY
      switch a disabled key on again.
  suspend ACCOUNT
  resume ACCOUNT
      suspend an account, or resume it (needs --account '*'): while suspended,
      every key of it is refused and nothing of it changes but revocation;
      resuming restores every key as it was.
  purge --older-than DURATION
      delete the keys of every account revoked or expired more than DURATION
      ago (such as 720h), in short batches (needs --account '*').
  reveal KEY
      print a publishable key again. Server keys are stored only as hashes
      (keyctl keeps no sealed copy): rotate one to get a new key.

Commands that only read (they never create, migrate or change a database):
  list ENV [--limit 100] [--after CURSOR]
      list a page of ENV's keys: prefix, status, default, scopes, limits, dates,
      name, owner; the next page's cursor is printed last.
  get KEY
      show one key, its limits included.
  limits KEY
      show a key's limits.
  usage KEY [--from TIME] [--to TIME] [--limit 100] [--after CURSOR]
  usage --env ENV [--from TIME] [--to TIME] [--limit 100] [--after CURSOR]
      show a page of a key's usage, or of ENV's keys: requests per hour and
      outcome, over [--from, --to) (RFC 3339; the last 24 hours by default).
  owner keys OWNER [--limit 100] [--after CURSOR]
      list a page of the keys issued to OWNER, in every environment, by key id.
  expiring --within DURATION [--env ENV] [--limit 100] [--after CURSOR]
      list a page of the keys that stop working within DURATION (such as 72h):
      expiries and ends of grace periods, soonest first.
  environments
      list the account's environments and their allowed origins.
  accounts [--limit 100] [--after CURSOR]
      list the accounts that have environments (needs --account '*').
  origins ENV
      show the web origins allowed to use ENV's publishable keys.
  lifetime ENV
      show the lifetime policy of ENV's keys.
  audit [ENV] [--limit 20]
      show audit events, newest first (--limit 0: all of them).
  help [COMMAND]
      show this help, or a command's.

KEY is a key id or a displayable prefix, server-<id> or client-<id>: a prefix
of the other type is not found, and a full key is refused, never echoed. ENV
and KEY are in --account: a key of another account is not found, as if it did
not exist.
Full keys are printed only by bootstrap, create, rotate and reveal, one per
line: "<environment> <type> <key>". All other output names keys by prefix.
Text that tenants wrote (names, owners, metadata, origins...) is printed with
control, bidi and invisible characters escaped, Go style: \x1b, \n, \u202e, \\.

Database: only bootstrap creates one (the SQLite file, or keystile's tables
in PostgreSQL). Every other command needs a database that bootstrap made,
and fails with exit status 3, creating nothing, where there is none (a
mistyped --db). Commands that change keys first upgrade an older schema;
read commands never write.

--json prints exactly one document on stdout, and nothing on stderr:
  list: {"keys": [VIEW...], "next": CURSOR}
  get, import, revoke, grace, scopes, owner, rename, metadata, limits: VIEW, with "limits" when the key has any
  create, rotate, reveal: {"full_key": "...", "view": VIEW}
  bootstrap: {"issued": [{"full_key": "...", "view": VIEW}...]}
  origins: SETTINGS                  environments: {"environments": [SETTINGS...]}
  lifetime: SETTINGS, with "lifetime" when ENV has a policy
  accounts: {"accounts": [ID...], "next": CURSOR}   close: {"account": ID, "revoked": N}
  disable, enable: VIEW              suspend, resume: {"account": ID, "suspended": BOOL}
  audit: {"events": [EVENT...]}, each EVENT with the key's "prefix"
  usage: {"counts": [COUNT...], "next": CURSOR}, each COUNT with the key's "prefix"
  owner keys, expiring: {"keys": [VIEW...], "next": CURSOR}
  owner revoke: {"revoked": N, "skipped_defaults": [PREFIX...]}   purge: {"deleted": N}
  owner limits: {"owner": ID, "limits": LIMITS, "keys": N}, "keys" after a change only
  help: {"usage": "..."}
  errors: {"error": {"code": "...", "message": "..."}}, same exit status
VIEW, SETTINGS, EVENT and COUNT are apikey.View, apikey.Settings, apikey.Event
and apikey.UsageCount in JSON. A bootstrap that fails after issuing keys prints
them beside the error.

Exit status: 0 done; 1 refused by a rule, or not found (an unknown key or
environment); 2 usage error (including rotate without --grace); 3 storage
error (no database at --db, or the database failed) or output not written.
`

// usage returns a command's help: its forms, what it does, its flags
// and the global ones.
func (cmd command) usage() string {
	var b strings.Builder
	for i, form := range cmd.forms {
		lead := "usage: "
		if i > 0 {
			lead = "       "
		}
		fmt.Fprintf(&b, "%skeyctl [global flags] %s\n", lead, form)
	}
	fmt.Fprintf(&b, "\n%s\n", cmd.doc)
	fs := newFlagSet(cmd.name)
	cmd.define(fs)
	if flagCount(fs) > 0 {
		b.WriteString("\nFlags:\n")
		printFlags(&b, fs)
	}
	b.WriteString("\n" + globalFlagsHelp)
	return b.String()
}

func flagCount(fs *flag.FlagSet) int {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n
}

// printFlags lists fs's flags as the usage text does: "--name VALUE"
// (VALUE is the back-quoted word of the flag's usage), what it is, and its
// default if that is not the zero value.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		value, text := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if value != "" {
			name += " " + value
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			text += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, text)
	})
	tw.Flush()
}

// newFlagSet returns a flag set that prints nothing: keyctl writes its own
// usage and errors.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses fs's flags in args and returns the other arguments. With
// interspersed, flags may stand before, between or after positional
// arguments; else parsing stops at the first positional one, which is
// returned with all that follows, as flag.FlagSet.Parse does.
//
// Parsing goes on past an error, so that every flag given is set (--json
// after a mistake still applies to its report), and returns the first
// error; but a help request (-h, --help), as flag.ErrHelp, comes before
// any error.
func parse(fs *flag.FlagSet, args []string, interspersed bool) ([]string, error) {
	var positional []string
	var first error
	for {
		before := len(args)
		err := fs.Parse(args)
		if err != nil && (first == nil || errors.Is(err, flag.ErrHelp)) && !errors.Is(first, flag.ErrHelp) {
			first = err
		}
		args = fs.Args()
		switch {
		case err != nil:
			if len(args) == before {
				args = args[1:] // "bad flag syntax" consumes nothing
			}
			continue
		case len(args) == 0:
			return positional, first
		case !interspersed:
			return args, first
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct {
	msg  string
	code string // for --json; "" means "usage"
	// usage is the help to print after the message, without --json.
	usage string
}

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{msg: fmt.Sprintf(format, args...)} }

// withUsage adds the help text to print after err, if it is a usageError.
func withUsage(err error, text string) error {
	var u usageError
	if errors.As(err, &u) {
		u.usage = text
		return u
	}
	return err
}

// unknownCommand refuses a command name, naming it only if it looks like
// one.
func unknownCommand(name string) error {
	if looksLikeName(name) {
		return usagef("unknown command %q", name)
	}
	return usagef("unknown command (not shown: only lower-case command names are echoed)")
}

// looksLikeName reports whether s may be printed back as the name of a
// command or flag: 1 to 24 lower-case letters, digits and dashes, which no
// full key is and which the random part of a key, mixed-case, hardly is.
func looksLikeName(s string) bool {
	if len(s) == 0 || len(s) > 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// flagError rewrites an error of fs.Parse so that it never echoes what was
// given, which may be a key pasted in the wrong place: it names a flag that
// fs defines, or an unknown one that looks like a flag name, and never a
// value. The messages it reads are the flag package's, stable since Go 1.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if looksLikeName(name) {
			return usagef("%s: unknown flag --%s", fs.Name(), name)
		}
		return usagef("%s: unknown flag (not shown: only lower-case flag names are echoed)", fs.Name())
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok && fs.Lookup(name) != nil {
		return usagef("%s: --%s needs a value", fs.Name(), name)
	}
	// "invalid value %q for flag -%s: %v", "invalid boolean value %q for
	// -%s: %v": the flag's name follows the last " for flag -" or " for -".
	for _, marker := range []string{" for flag -", " for -"} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			name, _, _ := strings.Cut(msg[i+len(marker):], ":")
			if f := fs.Lookup(name); f != nil {
				_, text := flag.UnquoteUsage(f)
				return usagef("%s: invalid value for --%s (%s)", fs.Name(), name, text)
			}
		}
	}
	return usagef("%s: invalid flag (not shown)", fs.Name())
}
