// Command keyctl is an operator's command line for keystile keys, against
// the same SQLite file as the example server or a PostgreSQL database. Its
// usage, as "keyctl help" prints it:
//
//	usage: keyctl [--db FILE|URL] [--actor NAME] [--account ID] [--json] COMMAND [ARGS]
//	       keyctl help [COMMAND]     or: keyctl COMMAND --help
//
//	Global flags, before or after the command:
//	  --db FILE|URL    SQLite file, or a postgres:// URL (default keystile.db)
//	  --actor NAME     actor name recorded in audit events (default keyctl)
//	  --account ID     the account to act in: the service's customer id (default
//	                   "default"); '*' acts across accounts (KEY commands, accounts)
//	  --json           print one JSON document on stdout, errors included
//
//	Commands that change keys or settings (as an owner; each is an audit event):
//	  bootstrap [ENV...]
//	      create environments, each with a default server key and publishable key,
//	      and print their keys; no ENV: production staging development, skipping
//	      those that exist. The only command that creates a database.
//	  create ENV server --scopes SCOPES [--expires 24h] [--name NAME] [--owner ID] [--metadata K=V,...]
//	  create ENV client [--expires 24h] [--name NAME] [--owner ID] [--metadata K=V,...]
//	      create an extra key and print it. SCOPES: customers:write,orders:read,...
//	      or "*" for full access. --owner names whom it is issued to.
//	  import ACCOUNT ENV server --digest HEX --scopes SCOPES [--expires 720h] [--name NAME] [--owner ID] [--metadata K=V,...]
//	  import ACCOUNT ENV client --digest HEX [--expires 720h] [--name NAME] [--owner ID] [--metadata K=V,...]
//	      import a key issued before keystile into ACCOUNT (needs --account '*') by the
//	      SHA-256 digest of its key string (hex) and print its prefix; rotate it to a
//	      keystile key.
//	  rotate KEY --grace DURATION
//	  rotate ENV server|client --grace DURATION
//	      replace a key (or ENV's default key of that type) and print the new one.
//	      DURATION is required: 0s ends the old key now, else up to 8760h.
//	  grace KEY DURATION
//	      change a rotated key's grace period, counted from its rotation.
//	  revoke KEY
//	      revoke a key at once and for good (a default key must be rotated first).
//	  scopes KEY SCOPE...
//	      replace the scopes of a server key that is not a default key.
//	  origins ENV ORIGIN...
//	  origins ENV --clear
//	      replace, or clear, the web origins allowed to use ENV's publishable keys:
//	      none admits no browser, '*' (quoted) admits every origin.
//	  owner KEY ID
//	  owner KEY --clear
//	      name whom a key is issued to, or nobody.
//	  owner revoke OWNER
//	      revoke every key issued to OWNER, in every environment, at once (default
//	      keys are skipped and named: rotate them first).
//	  owner limits OWNER [--rate N/WINDOW [--burst N]] [--quota N [--refill N/PERIOD]]
//	  owner limits OWNER --clear
//	      replace, or remove, the rate limit and quota that all of OWNER's keys share
//	      (without flags: show them; that only reads).
//	  rename KEY NAME
//	  rename KEY --clear
//	      rename a key, or remove its name.
//	  metadata KEY NAME=VALUE...
//	  metadata KEY --clear
//	      replace a key's metadata (up to 16 pairs; never a secret).
//	  limits KEY [--rate N/WINDOW] [--burst N] [--quota N] [--refill N/day|month] [--allow-ip CIDR]...
//	  limits KEY --clear
//	      replace a key's limits (what no flag sets, the key no longer has), or
//	      remove them: --rate 100/1m --burst 20, --quota 10000 --refill 10000/month,
//	      --allow-ip 10.0.0.0/8 (repeatable; server keys only).
//	  lifetime ENV [--default-expiry DURATION] [--max-lifetime DURATION]
//	  lifetime ENV --clear
//	      replace the lifetime policy of ENV's non-default keys (what no flag sets,
//	      the policy no longer has), or remove it: --default-expiry 720h is the
//	      expiry of a key created without one, --max-lifetime 8760h the longest a
//	      key may live.
//	  close ACCOUNT
//	      close an account: revoke every key of every environment of it, default
//	      keys included; it takes no new key.
//	  disable KEY
//	      switch a key off until it is enabled: it is refused (a default key must
//	      be rotated first); its expiry keeps running.
//	  enable KEY
//	      switch a disabled key on again.
//	  suspend ACCOUNT
//	  resume ACCOUNT
//	      suspend an account, or resume it (needs --account '*'): while suspended,
//	      every key of it is refused and nothing of it changes but revocation;
//	      resuming restores every key as it was.
//	  purge --older-than DURATION
//	      delete the keys of every account revoked or expired more than DURATION
//	      ago (such as 720h), in short batches (needs --account '*').
//	  reveal KEY
//	      print a publishable key again. Server keys are stored only as hashes
//	      (keyctl keeps no sealed copy): rotate one to get a new key.
//
//	Commands that only read (they never create, migrate or change a database):
//	  list ENV [--limit 100] [--after CURSOR]
//	      list a page of ENV's keys: prefix, status, default, scopes, limits, dates,
//	      name, owner; the next page's cursor is printed last.
//	  get KEY
//	      show one key, its limits included.
//	  limits KEY
//	      show a key's limits.
//	  usage KEY [--from TIME] [--to TIME] [--limit 100] [--after CURSOR]
//	  usage --env ENV [--from TIME] [--to TIME] [--limit 100] [--after CURSOR]
//	      show a page of a key's usage, or of ENV's keys: requests per hour and
//	      outcome, over [--from, --to) (RFC 3339; the last 24 hours by default).
//	  owner keys OWNER [--limit 100] [--after CURSOR]
//	      list a page of the keys issued to OWNER, in every environment, by key id.
//	  expiring --within DURATION [--env ENV] [--limit 100] [--after CURSOR]
//	      list a page of the keys that stop working within DURATION (such as 72h):
//	      expiries and ends of grace periods, soonest first.
//	  environments
//	      list the account's environments and their allowed origins.
//	  accounts [--limit 100] [--after CURSOR]
//	      list the accounts that have environments (needs --account '*').
//	  origins ENV
//	      show the web origins allowed to use ENV's publishable keys.
//	  lifetime ENV
//	      show the lifetime policy of ENV's keys.
//	  audit [ENV] [--limit 20]
//	      show audit events, newest first (--limit 0: all of them).
//	  help [COMMAND]
//	      show this help, or a command's.
//
//	KEY is a key id or a displayable prefix, server-<id> or client-<id>: a prefix
//	of the other type is not found, and a full key is refused, never echoed. ENV
//	and KEY are in --account: a key of another account is not found, as if it did
//	not exist.
//	Full keys are printed only by bootstrap, create, rotate and reveal, one per
//	line: "<environment> <type> <key>". All other output names keys by prefix.
//	Text that tenants wrote (names, owners, metadata, origins...) is printed with
//	control, bidi and invisible characters escaped, Go style: \x1b, \n, \u202e, \\.
//
//	Database: only bootstrap creates one (the SQLite file, or keystile's tables
//	in PostgreSQL). Every other command needs a database that bootstrap made,
//	and fails with exit status 3, creating nothing, where there is none (a
//	mistyped --db). Commands that change keys first upgrade an older schema;
//	read commands never write.
//
//	--json prints exactly one document on stdout, and nothing on stderr:
//	  list: {"keys": [VIEW...], "next": CURSOR}
//	  get, import, revoke, grace, scopes, owner, rename, metadata, limits: VIEW, with "limits" when the key has any
//	  create, rotate, reveal: {"full_key": "...", "view": VIEW}
//	  bootstrap: {"issued": [{"full_key": "...", "view": VIEW}...]}
//	  origins: SETTINGS                  environments: {"environments": [SETTINGS...]}
//	  lifetime: SETTINGS, with "lifetime" when ENV has a policy
//	  accounts: {"accounts": [ID...], "next": CURSOR}   close: {"account": ID, "revoked": N}
//	  disable, enable: VIEW              suspend, resume: {"account": ID, "suspended": BOOL}
//	  audit: {"events": [EVENT...]}, each EVENT with the key's "prefix"
//	  usage: {"counts": [COUNT...], "next": CURSOR}, each COUNT with the key's "prefix"
//	  owner keys, expiring: {"keys": [VIEW...], "next": CURSOR}
//	  owner revoke: {"revoked": N, "skipped_defaults": [PREFIX...]}   purge: {"deleted": N}
//	  owner limits: {"owner": ID, "limits": LIMITS, "keys": N}, "keys" after a change only
//	  help: {"usage": "..."}
//	  errors: {"error": {"code": "...", "message": "..."}}, same exit status
//	VIEW, SETTINGS, EVENT and COUNT are apikey.View, apikey.Settings, apikey.Event
//	and apikey.UsageCount in JSON. A bootstrap that fails after issuing keys prints
//	them beside the error.
//
//	Exit status: 0 done; 1 refused by a rule, or not found (an unknown key or
//	environment); 2 usage error (including rotate without --grace); 3 storage
//	error (no database at --db, or the database failed) or output not written.
//
// keyctl acts as an owner: whoever can run it can read the database anyway.
// The error codes of --json are those of the management API
// (package middleware/admin) where one applies.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/storage/sqlstore"
)

// Exit statuses.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
	exitStorage = 3
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// globals are the flags that every command takes, before or after its name.
// A new one is a field here and a line in register (and in usage).
type globals struct {
	db      string
	actor   string
	account string
	json    bool
}

func defaultGlobals() globals {
	return globals{db: "keystile.db", actor: "keyctl", account: apikey.DefaultAccount}
}

// register defines the global flags on fs. Each defaults to its current
// value, so that a command's flag set, which takes them too, keeps what
// was given before the command.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.db, "db", g.db, "SQLite file, or a postgres:// URL")
	fs.StringVar(&g.actor, "actor", g.actor, "actor name recorded in audit events")
	fs.StringVar(&g.account, "account", g.account, "the account to act in (the service's customer id); '*': across accounts")
	fs.BoolVar(&g.json, "json", g.json, "print one JSON document on stdout, errors included")
}

// scan sets the global flags in args, which hold other arguments and
// flags too, ignoring the rest: for the report of a command line that is
// wrong before its global flags.
func (g *globals) scan(args []string) {
	fs := newFlagSet("keyctl")
	g.register(fs)
	_, _ = parse(fs, args, true)
}

// check refuses global values that hold a key: keyctl would print or store
// them.
func (g *globals) check() error {
	for _, f := range []struct{ name, value string }{{"db", g.db}, {"actor", g.actor}, {"account", g.account}} {
		if holdsKey(f.value) {
			return usagef("--%s: %s", f.name, notShown)
		}
	}
	return nil
}

// keyPattern matches the start of a full key: a prefix and the separator
// before the secret.
var keyPattern = regexp.MustCompile(`(?:server|client)-[0-9A-Za-z]{12}_`)

// holdsKey reports whether s holds what looks like a full key.
func holdsKey(s string) bool { return keyPattern.MatchString(s) }

// notShown ends the message of a refusal whose input is not printed.
const notShown = "that looks like a full key, secret included: refused, and not shown"

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := defaultGlobals()
	out := &printer{stdout: stdout, stderr: stderr, json: &g.json}
	global := newFlagSet("keyctl")
	g.register(global)
	rest, err := parse(global, args, false)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return out.help(usage)
	case err != nil:
		return out.fail(withUsage(flagError(global, err), usage))
	case len(rest) == 0:
		return out.fail(withUsage(usagef("no command"), usage))
	}
	cmd, ok := lookup(rest[0])
	if !ok {
		g.scan(rest[1:]) // for --json
		return out.fail(withUsage(unknownCommand(rest[0]), usage))
	}

	fs := newFlagSet(cmd.name)
	g.register(fs)
	action := cmd.define(fs)
	pos, err := parse(fs, rest[1:], true)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return out.help(cmd.usage())
	case err != nil:
		return out.fail(withUsage(flagError(fs, err), cmd.usage()))
	case len(pos) < cmd.min || len(pos) > cmd.max:
		return out.fail(withUsage(usagef("%s: wrong number of arguments", cmd.name), cmd.usage()))
	}
	if err := g.check(); err != nil {
		return out.fail(err)
	}
	c := &cli{g: &g}
	defer c.close()
	res, err := action(ctx, c, pos)
	return out.finish(res, err)
}

// cli is what commands act with: the global flags, and the database once a
// command opened it.
type cli struct {
	g     *globals
	store *sqlstore.Store
	m     *apikey.Manager
}

// open opens the database as access allows, once, and returns the
// Manager that acts on it as keyctl's actor.
func (c *cli) open(ctx context.Context, access exampledb.Access) (*apikey.Manager, error) {
	if c.m != nil {
		return c.m, nil
	}
	store, err := exampledb.OpenFor(ctx, c.g.db, access)
	if err != nil {
		return nil, err
	}
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	if err != nil {
		store.DB().Close()
		return nil, err
	}
	c.store, c.m = store, m
	return m, nil
}

// close closes the database, if a command opened it.
func (c *cli) close() {
	if c.store != nil {
		c.store.DB().Close()
	}
}

// actor is who keyctl acts as: an owner, named by --actor.
func (c *cli) actor() apikey.Actor {
	return apikey.Actor{ID: c.g.actor, Role: apikey.Owner, Account: c.g.account}
}
