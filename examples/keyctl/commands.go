package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/storage"
)

// A command is one keyctl command.
type command struct {
	name string
	// forms are the command's synopses, without "keyctl", one per line of
	// its help.
	forms []string
	// doc says what the command does, for its help.
	doc string
	// min and max bound the number of positional arguments.
	min, max int
	// define defines the command's flags on fs and returns the action
	// that runs it with its positional arguments, after fs is parsed.
	define func(fs *flag.FlagSet) action
}

// An action runs a command. It opens the database itself (cli.open), with
// the access it needs, after it has checked its arguments: a command line
// that is wrong never touches the database. It may return a result and an
// error both: bootstrap returns the keys it issued before it failed.
type action func(ctx context.Context, c *cli, args []string) (result, error)

// many is the max of commands that take a list.
const many = 1000

// commands are keyctl's commands, in the order of the usage. It is set in
// init, because help reads it.
var commands []command

func init() {
	commands = []command{
		{name: "bootstrap", forms: []string{"bootstrap [ENV...]"}, max: many, define: noFlags(bootstrap),
			doc: "Create environments, each with a default server key and a default publishable key,\n" +
				"and print their keys, one line each. With no ENV, the built-in environments\n" +
				"(production staging development), skipping those that exist; a named ENV that\n" +
				"exists is refused. The only command that creates a database."},
		{name: "create", forms: []string{
			"create ENV server --scopes SCOPES [--expires 24h] [--name NAME] [--owner ID] [--metadata K=V,...]",
			"create ENV client [--expires 24h] [--name NAME] [--owner ID] [--metadata K=V,...]",
		}, min: 2, max: 2, define: create,
			doc: "Create an extra key, not a default key, and print it. A server key needs its\n" +
				`scopes: customers:write,orders:read,... or "*" for full access. --owner names` + "\n" +
				"whom it is issued to; --metadata attaches name=value pairs (never a secret)."},
		{name: "import", forms: []string{
			"import ACCOUNT ENV server --digest HEX --scopes SCOPES [--expires 720h] [--name NAME] [--owner ID] [--metadata K=V,...]",
			"import ACCOUNT ENV client --digest HEX [--expires 720h] [--name NAME] [--owner ID] [--metadata K=V,...]",
		}, min: 3, max: 3, define: importKey,
			doc: "Import a key that the service issued before it adopted keystile into ACCOUNT,\n" +
				"the account it belongs to, by the SHA-256 digest of its key string (as a table\n" +
				"of sha256(key) holds it), and print its prefix. Importing is the service's act:\n" +
				"it needs --account '*' (ACCOUNT's own owners cannot). The service's middleware accepts it in the format it declares\n" +
				"(middleware.KeyOptions.Imported). Never a default key; rotate it to get a\n" +
				"keystile key, the old one working for the grace period."},
		{name: "rotate", forms: []string{
			"rotate KEY --grace DURATION",
			"rotate ENV server|client --grace DURATION",
		}, min: 1, max: 2, define: rotate,
			doc: "Replace a key, or ENV's default key of a type, with a new one and print it. The\n" +
				"old key keeps working for the grace period: required, 0s (it ends now) to 8760h."},
		{name: "grace", forms: []string{"grace KEY DURATION"}, min: 2, max: 2, define: noFlags(grace),
			doc: "Change the grace period of a rotated key, counted from its rotation, up to 8760h\n" +
				"and never past an expiry it had before; 0s ends it now."},
		{name: "revoke", forms: []string{"revoke KEY"}, min: 1, max: 1, define: noFlags(revoke),
			doc: "Revoke a key at once and for good. A default key must be rotated first."},
		{name: "scopes", forms: []string{"scopes KEY SCOPE..."}, min: 2, max: many, define: noFlags(scopes),
			doc: "Replace the scopes of a server key that is not a default key (a default server\n" +
				`key holds every scope). SCOPE: resource:read, resource:write or "*"; a list` + "\n" +
				"separated by commas works too."},
		{name: "origins", forms: []string{"origins ENV", "origins ENV ORIGIN...", "origins ENV --clear"},
			min: 1, max: many, define: origins,
			doc: "Show, replace or clear the web origins allowed to use ENV's publishable keys.\n" +
				"None admits no browser; '*' (quoted) admits every origin. Showing only reads."},
		{name: "owner", forms: []string{"owner KEY ID", "owner KEY --clear", "owner revoke OWNER",
			"owner keys OWNER [--limit 100] [--after CURSOR]",
			"owner limits OWNER [--rate N/WINDOW [--burst N]] [--quota N [--refill N/PERIOD]]", "owner limits OWNER --clear"},
			min: 1, max: 2, define: ownerCommand,
			doc: "Name whom a key is issued to (the service's user or customer id), or nobody.\n" +
				"owner revoke: revoke every key issued to OWNER, in every environment, at once\n" +
				"(default keys are skipped and named: rotate them first). owner keys: list a\n" +
				"page of OWNER's keys, in every environment, by key id; it only reads.\n" +
				"owner limits: show, replace or remove the rate limit and quota that all of\n" +
				"OWNER's keys share (one budget for all of them, besides each key's own limits);\n" +
				"showing only reads."},
		{name: "rename", forms: []string{"rename KEY NAME", "rename KEY --clear"}, min: 1, max: 2, define: rename,
			doc: "Rename a key (up to 200 bytes, never a secret), or remove its name."},
		{name: "metadata", forms: []string{"metadata KEY NAME=VALUE...", "metadata KEY --clear"}, min: 1, max: many, define: metadata,
			doc: "Replace a key's metadata: up to 16 name=value pairs, names of [a-z0-9_.-]."},
		{name: "limits", forms: []string{
			"limits KEY",
			"limits KEY [--rate N/WINDOW] [--burst N] [--quota N] [--refill N/day|month] [--allow-ip CIDR]...",
			"limits KEY --clear",
		}, min: 1, max: 1, define: limits,
			doc: "Show a key's limits, or replace them all: what no flag sets, the key no longer\n" +
				"has; --clear removes every limit. --rate 100/1m: at most 100 requests a minute\n" +
				"(WINDOW: whole seconds, 1s to 24h), in bursts of --burst. --quota 10000: uses\n" +
				"that requests spend, --refill 10000/month adding to them at each UTC day or\n" +
				"month. --allow-ip: the ranges a server key may be used from. Showing only reads."},
		{name: "lifetime", forms: []string{
			"lifetime ENV",
			"lifetime ENV [--default-expiry DURATION] [--max-lifetime DURATION]",
			"lifetime ENV --clear",
		}, min: 1, max: 1, define: lifetime,
			doc: "Show the lifetime policy of ENV's keys, or replace it: what no flag sets, the\n" +
				"policy no longer has; --clear removes it. A key created without --expires gets\n" +
				"--default-expiry (or --max-lifetime when that alone is set); an expiry, or a\n" +
				"rotation's grace, beyond --max-lifetime from the key's creation is refused.\n" +
				"Whole seconds, up to 87600h (ten years). Default keys have no expiry: no policy\n" +
				"applies to them. Existing keys keep their expiry. Showing only reads."},
		{name: "close", forms: []string{"close ACCOUNT"}, min: 1, max: 1, define: noFlags(closeAccount),
			doc: "Close an account: every key of every environment of it is revoked at once,\n" +
				"default keys included, and it takes no new key. ACCOUNT must be --account,\n" +
				"or --account '*' acts across accounts."},
		{name: "purge", forms: []string{"purge --older-than DURATION"}, define: purge,
			doc: "Delete the keys, of every account, revoked or expired more than DURATION ago\n" +
				"(such as 720h), in short batches (needs --account '*'). Their audit events stay."},
		{name: "reveal", forms: []string{"reveal KEY"}, min: 1, max: 1, define: noFlags(reveal),
			doc: "Print a full key again, as creation did, and record it in the audit log.\n" +
				"Publishable keys only: keyctl keeps no sealed copy of server keys, which are\n" +
				"stored only as hashes and shown once; rotate a server key to get a new one."},
		{name: "list", forms: []string{"list ENV [--limit 100] [--after CURSOR]"}, min: 1, max: 1, define: list,
			doc: "List a page of ENV's keys: prefix, status, default, scopes, limits, dates, name\n" +
				"and owner, in creation order; the next page's cursor is printed last. Only reads."},
		{name: "get", forms: []string{"get KEY"}, min: 1, max: 1, define: noFlags(get),
			doc: "Show one key, never its secret. Only reads."},
		{name: "usage", forms: []string{
			"usage KEY [--from TIME] [--to TIME] [--limit 100] [--after CURSOR]",
			"usage --env ENV [--from TIME] [--to TIME] [--limit 100] [--after CURSOR]",
		}, max: 1, define: keyUsage,
			doc: "Show a page of a key's usage, or of every key of ENV: requests per hour and\n" +
				"outcome (admitted, or the code of a refusal such as rate_limited), over the\n" +
				"hours of [--from, --to): by default the last 24 hours, at most 31 days. Only\n" +
				"reads."},
		{name: "expiring", forms: []string{"expiring --within DURATION [--env ENV] [--limit 100] [--after CURSOR]"}, define: expiring,
			doc: "List a page of the keys that stop working within DURATION from now (such as\n" +
				"72h): expiries and ends of grace periods, soonest first; of every environment,\n" +
				"or of --env. Only reads."},
		{name: "environments", forms: []string{"environments"}, define: noFlags(environments),
			doc: "List the account's environments and their allowed origins. Only reads."},
		{name: "accounts", forms: []string{"accounts [--limit 100] [--after CURSOR]"}, define: accounts,
			doc: "List a page of the accounts that have environments (needs --account '*').\n" +
				"Only reads."},
		{name: "audit", forms: []string{"audit [ENV] [--limit 20]"}, max: 1, define: audit,
			doc: "Show audit events, newest first, of ENV or of every environment. Only reads."},
		{name: "help", forms: []string{"help [COMMAND]"}, max: 1, define: noFlags(help),
			doc: "Show the usage, or a command's."},
	}
	commands = append(commands, switchCommands()...)
}

// lookup returns the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// noFlags is the define of a command without flags of its own.
func noFlags(a action) func(*flag.FlagSet) action {
	return func(*flag.FlagSet) action { return a }
}

func bootstrap(ctx context.Context, c *cli, envs []string) (result, error) {
	named := len(envs) > 0
	if !named {
		envs = apikey.BuiltinEnvironments
	}
	for _, env := range envs { // before the database is created
		if err := apikey.ValidateEnvironment(env); err != nil {
			return result{}, err
		}
	}
	m, err := c.open(ctx, exampledb.Create)
	if err != nil {
		return result{}, err
	}
	var issued []apikey.Issued
	for _, env := range envs {
		keys, err := m.Bootstrap(ctx, c.actor(), env)
		if errors.Is(err, apikey.ErrAlreadyBootstrapped) && !named {
			continue // bootstrapping the built-ins is idempotent
		}
		if err != nil && len(issued) > 0 {
			return issuedList(issued), err // the keys issued so far are shown
		}
		if err != nil {
			return result{}, err
		}
		issued = append(issued, keys...)
	}
	return issuedList(issued), nil
}

func create(fs *flag.FlagSet) action {
	scopes := fs.String("scopes", "", "comma-separated `SCOPES` of a server key, required (\"*\" for full access)")
	expires := fs.Duration("expires", 0, "the key's lifetime, a `DURATION` such as 24h (default: no expiry)")
	name := fs.String("name", "", "a `NAME` for people, such as \"billing worker\"")
	ownerID := fs.String("owner", "", "whom the key is issued to: an `ID` of the service's user or customer")
	md := fs.String("metadata", "", "comma-separated `NAME=VALUE` pairs to attach to the key")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if holdsKey(*name) || holdsKey(*ownerID) || holdsKey(*md) {
			return result{}, usagef("create: %s", notShown)
		}
		pairs, err := parsePairs(splitList(*md))
		if err != nil {
			return result{}, err
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		req := apikey.CreateRequest{Environment: args[0], Type: apikey.KeyType(args[1]), Name: *name,
			Owner: *ownerID, Metadata: pairs, Scopes: splitList(*scopes)}
		if *expires != 0 {
			req.ExpiresAt = m.Now().Add(*expires)
		}
		k, err := m.Create(ctx, c.actor(), req)
		if err != nil {
			return result{}, err
		}
		return issuedResult(k.Key, k.View), nil
	}
}

func rotate(fs *flag.FlagSet) action {
	grace := fs.Duration("grace", 0, "how long the old key keeps working, a `DURATION`, required: 0s (it ends now) to 8760h")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if !isSet(fs, "grace") {
			return result{}, usageError{code: "grace_required", msg: fmt.Sprintf(
				"rotate: --grace is required: 0s (expire now), 1h, 24h, 72h or 168h (the console's choices), or any duration up to %dh",
				apikey.APIPolicy.Max/time.Hour)}
		}
		req := apikey.RotateRequest{Grace: *grace, ExpireNow: *grace == 0, Policy: apikey.APIPolicy}
		if len(args) == 1 {
			req.KeyID = args[0]
		} else {
			req.Environment, req.Type = args[0], apikey.KeyType(args[1])
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		k, err := m.Rotate(ctx, c.actor(), req)
		if err != nil {
			return result{}, err
		}
		return issuedResult(k.Key, k.View), nil
	}
}

func grace(ctx context.Context, c *cli, args []string) (result, error) {
	d, err := time.ParseDuration(args[1])
	if err != nil { // its text holds the input
		return result{}, usagef("grace: DURATION: want a duration such as 24h, or 0s")
	}
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	view, err := m.ChangeGrace(ctx, c.actor(), args[0], d, apikey.APIPolicy)
	if err != nil {
		return result{}, err
	}
	return viewLine(view, view.Prefix, string(view.Status), "expires", date(view.ExpiresAt)), nil
}

func revoke(ctx context.Context, c *cli, args []string) (result, error) {
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	view, err := m.Revoke(ctx, c.actor(), args[0])
	if err != nil {
		return result{}, err
	}
	return viewLine(view, view.Prefix, string(view.Status)), nil
}

func scopes(ctx context.Context, c *cli, args []string) (result, error) {
	var list []string
	for _, a := range args[1:] {
		list = append(list, splitList(a)...)
	}
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	view, err := m.SetScopes(ctx, c.actor(), args[0], list)
	if err != nil {
		return result{}, err
	}
	return viewLine(view, view.Prefix, "scopes", strings.Join(view.Scopes, ",")), nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item != "" {
			out = append(out, item)
		}
	}
	return out
}

func origins(fs *flag.FlagSet) action {
	clear := fs.Bool("clear", false, "remove every allowed origin: no browser may then use ENV's publishable keys")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		env, list := args[0], args[1:]
		if *clear && len(list) > 0 {
			return result{}, usagef("origins: give ORIGIN... or --clear, not both")
		}
		if !*clear && len(list) == 0 { // show
			m, err := c.open(ctx, exampledb.ReadOnly)
			if err != nil {
				return result{}, err
			}
			s, err := m.Settings(ctx, c.actor(), env)
			if err != nil {
				return result{}, err
			}
			return settingsResult(s), nil
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		s, err := m.SetAllowedOrigins(ctx, c.actor(), env, list)
		if err != nil {
			return result{}, err
		}
		return settingsResult(s), nil
	}
}

func reveal(ctx context.Context, c *cli, args []string) (result, error) {
	m, err := c.open(ctx, exampledb.Migrate) // a reveal is an audit event
	if err != nil {
		return result{}, err
	}
	k, err := m.Reveal(ctx, c.actor(), args[0])
	if errors.Is(err, apikey.ErrNotRevealable) {
		return result{}, fmt.Errorf("%w; keyctl keeps no sealed copy of server keys (no apikey.Sealer), "+
			"so they are shown only when created or rotated: rotate it to get a new key", err)
	}
	if err != nil {
		return result{}, err
	}
	view, err := m.Get(ctx, c.actor(), k.ID())
	if err != nil {
		return result{}, err
	}
	return issuedResult(k, view), nil
}

func list(fs *flag.FlagSet) action {
	page := pageFlags(fs)
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		m, err := c.open(ctx, exampledb.ReadOnly)
		if err != nil {
			return result{}, err
		}
		keys, err := m.List(ctx, c.actor(), args[0], *page)
		if err != nil {
			return result{}, err
		}
		return result{
			doc: keys,
			text: func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				_ = printRow(tw, "\t", "PREFIX", "STATUS", "DEFAULT", "SCOPES", "LIMITS", "CREATED", "EXPIRES", "LAST USED", "NAME", "OWNER")
				for _, v := range keys.Keys {
					_ = printRow(tw, "\t", v.Prefix, string(v.Status), fmt.Sprint(v.Default), strings.Join(v.Scopes, ","),
						limitsSummary(v.Limits), date(v.CreatedAt), date(v.ExpiresAt), date(v.LastUsedAt), v.Name, v.Owner)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return nextPage(w, keys.Next)
			},
		}, nil
	}
}

// nextPage writes the line that names the next page's cursor, if there is
// a next page.
func nextPage(w io.Writer, cursor string) error {
	if cursor == "" {
		return nil
	}
	return printRow(w, " ", "next page: --after", cursor)
}

// pageFlags defines --limit and --after, a page of a list.
func pageFlags(fs *flag.FlagSet) *apikey.Page {
	p := &apikey.Page{}
	fs.IntVar(&p.Limit, "limit", apikey.DefaultPageSize, "show at most `N` items (1 to 1000)")
	fs.StringVar(&p.After, "after", "", "start after the `CURSOR` that the previous page printed")
	return p
}

func accounts(fs *flag.FlagSet) action {
	page := pageFlags(fs)
	return func(ctx context.Context, c *cli, _ []string) (result, error) {
		m, err := c.open(ctx, exampledb.ReadOnly)
		if err != nil {
			return result{}, err
		}
		list, err := m.Accounts(ctx, c.actor(), *page)
		if err != nil {
			return result{}, err
		}
		return result{doc: list, text: func(w io.Writer) error {
			for _, a := range list.Accounts {
				if err := printRow(w, "", a); err != nil {
					return err
				}
			}
			return nextPage(w, list.Next)
		}}, nil
	}
}

func owner(fs *flag.FlagSet) action {
	clear := fs.Bool("clear", false, "name nobody")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if *clear == (len(args) == 2) {
			return result{}, usagef("owner: give an ID or --clear")
		}
		id := ""
		if len(args) == 2 {
			if id = args[1]; holdsKey(id) {
				return result{}, usagef("owner: %s", notShown)
			}
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		view, err := m.SetOwner(ctx, c.actor(), args[0], id)
		if err != nil {
			return result{}, err
		}
		return viewLine(view, view.Prefix, "owner", view.Owner), nil
	}
}

func metadata(fs *flag.FlagSet) action {
	clear := fs.Bool("clear", false, "remove every entry")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if *clear == (len(args) > 1) {
			return result{}, usagef("metadata: give NAME=VALUE... or --clear")
		}
		if holdsKey(strings.Join(args[1:], " ")) {
			return result{}, usagef("metadata: %s", notShown)
		}
		pairs, err := parsePairs(args[1:])
		if err != nil {
			return result{}, err
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		view, err := m.SetMetadata(ctx, c.actor(), args[0], pairs)
		if err != nil {
			return result{}, err
		}
		return viewLine(view, view.Prefix, "metadata", formatPairs(view.Metadata)), nil
	}
}

// parsePairs reads NAME=VALUE items; the Manager validates them.
func parsePairs(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(items))
	for _, item := range items {
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, usagef("metadata: want NAME=VALUE pairs")
		}
		out[name] = value
	}
	return out, nil
}

func formatPairs(md map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(md)) {
		parts = append(parts, name+"="+md[name])
	}
	return strings.Join(parts, ",")
}

func closeAccount(ctx context.Context, c *cli, args []string) (result, error) {
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	n, err := m.CloseAccount(ctx, c.actor(), args[0])
	if err != nil {
		return result{}, err
	}
	return result{
		doc: struct {
			Account string `json:"account"`
			Revoked int    `json:"revoked"`
		}{args[0], n},
		text: func(w io.Writer) error {
			return printRow(w, " ", args[0], "closed:", fmt.Sprint(n), "keys revoked")
		},
	}, nil
}

func get(ctx context.Context, c *cli, args []string) (result, error) {
	m, err := c.open(ctx, exampledb.ReadOnly)
	if err != nil {
		return result{}, err
	}
	v, err := m.Get(ctx, c.actor(), args[0])
	if err != nil {
		return result{}, err
	}
	return result{doc: v, text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		rows := [][2]string{
			{"prefix", v.Prefix}, {"account", v.Account}, {"type", string(v.Type)}, {"environment", v.Environment},
			{"name", v.Name}, {"owner", v.Owner}, {"metadata", formatPairs(v.Metadata)},
			{"scopes", strings.Join(v.Scopes, ",")}, {"default", fmt.Sprint(v.Default)}, {"status", string(v.Status)},
			{"created", date(v.CreatedAt)}, {"expires", date(v.ExpiresAt)}, {"rotated", date(v.RotatedAt)},
			{"revoked", date(v.RevokedAt)}, {"disabled", date(v.DisabledAt)}, {"last used", date(v.LastUsedAt)},
		}
		if v.Imported {
			rows = append(rows, [2]string{"imported", "true: rotate it to a keystile key"})
		}
		for _, row := range append(rows, limitRows(v.Limits)...) {
			_ = printRow(tw, "\t", row[0], row[1])
		}
		return tw.Flush()
	}}, nil
}

func environments(ctx context.Context, c *cli, _ []string) (result, error) {
	m, err := c.open(ctx, exampledb.ReadOnly)
	if err != nil {
		return result{}, err
	}
	var all []apikey.Settings
	for page := (apikey.Page{Limit: apikey.MaxPageSize}); ; {
		list, err := m.Environments(ctx, c.actor(), page)
		if err != nil {
			return result{}, err
		}
		all = append(all, list.Environments...)
		if list.Next == "" {
			break
		}
		page.After = list.Next
	}
	for i := range all {
		all[i] = withOrigins(all[i])
	}
	return result{
		doc: struct {
			Environments []apikey.Settings `json:"environments"`
		}{nonNil(all)},
		text: func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			_ = printRow(tw, "\t", "ENVIRONMENT", "ALLOWED ORIGINS")
			for _, s := range all {
				origins := strings.Join(s.AllowedOrigins, " ")
				if origins == "" {
					origins = "(none)"
				}
				_ = printRow(tw, "\t", s.Environment, origins)
			}
			return tw.Flush()
		},
	}, nil
}

func audit(fs *flag.FlagSet) action {
	limit := fs.Int("limit", 20, "show at most `N` events (0: all of them)")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if *limit < 0 {
			return result{}, usagef("audit: --limit: want 0 (all) or more")
		}
		m, err := c.open(ctx, exampledb.ReadOnly)
		if err != nil {
			return result{}, err
		}
		env := ""
		if len(args) == 1 {
			env = args[0]
			if _, err := m.Settings(ctx, c.actor(), env); err != nil { // an unknown environment is refused
				return result{}, err
			}
		}
		q := storage.EventQuery{Account: c.g.account, Environment: env, Limit: *limit}
		if q.Account == apikey.AnyAccount {
			q.Account = "" // every account's events
		}
		events, err := c.store.Events(ctx, q) // a storage.AuditLog
		if err != nil {
			return result{}, err
		}
		return auditResult(ctx, c, events)
	}
}

// auditResult names the key of each event by its displayable prefix. An
// Event carries the key's type since accounts came; older events (migrated)
// may not, and their keys are looked up once each: at most as many lookups
// as events, which --limit bounds.
func auditResult(ctx context.Context, c *cli, events []apikey.Event) (result, error) {
	prefixes := map[string]string{}
	docs := make([]auditEvent, len(events))
	for i, e := range events {
		docs[i].Event = e
		if e.KeyID == "" {
			continue
		}
		if e.KeyType != "" {
			docs[i].Prefix = e.KeyPrefix()
			continue
		}
		prefix, ok := prefixes[e.KeyID]
		if !ok {
			v, err := c.m.Get(ctx, c.actor(), e.KeyID)
			switch {
			case err == nil:
				prefix = v.Prefix
			case !errors.Is(err, apikey.ErrNotFound):
				return result{}, err
			}
			prefixes[e.KeyID] = prefix // "" for a key the store no longer has
		}
		docs[i].Prefix = prefix
	}
	return result{
		doc: struct {
			Events []auditEvent `json:"events"`
		}{docs},
		text: func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			_ = printRow(tw, "\t", "TIME", "ACTOR", "ACTION", "ACCOUNT", "ENVIRONMENT", "KEY", "DETAIL")
			for _, e := range docs {
				key := e.Prefix
				switch {
				case e.KeyID == "":
					key = "-"
				case key == "":
					key = "(unknown key) " + e.KeyID // the store lost it: its id is all there is
				}
				_ = printRow(tw, "\t", date(e.Time), e.Actor.ID, string(e.Action), e.Account, e.Environment, key, e.Detail)
			}
			return tw.Flush()
		},
	}, nil
}

func help(_ context.Context, _ *cli, args []string) (result, error) {
	if len(args) == 0 {
		return usageResult(usage), nil
	}
	cmd, ok := lookup(args[0])
	if !ok {
		return result{}, withUsage(unknownCommand(args[0]), usage)
	}
	return usageResult(cmd.usage()), nil
}

func date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}
