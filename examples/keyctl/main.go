// Command keyctl is an operator's command line for keystile keys, against
// the same SQLite file as the example server or a PostgreSQL database.
//
//	keyctl [-db keystile.db] [-actor NAME] COMMAND [ARGS]
//
// Commands:
//
//	bootstrap [ENV...]                   create environments (default: production staging development)
//	list ENV                             list keys: prefix, type, status, scopes, dates
//	create ENV server --scopes SCOPES [--expires 24h] [--name NAME]
//	                                     SCOPES: customers:write,orders:read,... or "*" for full access
//	create ENV client [--expires 24h] [--name NAME]
//	rotate KEY | ENV server|client --grace DURATION
//	                                     DURATION is required: 0s ends the old key now; else up to 8760h
//	grace KEY DURATION                   change a rotated key's grace period (from its rotation)
//	revoke KEY                           revoke a key (a default key must be rotated first)
//	origins ENV [ORIGIN...] [--clear]    show, or replace, the allowed origins for publishable keys;
//	                                     none admits no browser, '*' (quoted) admits every origin
//	audit [ENV] [--limit 20]             show audit events, newest first
//
// KEY is a key id or a displayable prefix, server-<id> or client-<id>, read
// by apikey.ParseKeyID through the Manager: a prefix of the other type is
// not found, and a full key is refused (never echoed). Full keys are
// printed only when created, one per line: "<environment> <type> <key>".
// keyctl acts as an owner: whoever can run it can read the database anyway.
//
// Exit status: 0 done, 1 refused (a lifecycle rule, a missing key), 2 usage
// error (including rotate without --grace: no rotation picks a grace
// silently), 3 storage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/storage"
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

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run executes one command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("keyctl", flag.ContinueOnError)
	global.SetOutput(stderr)
	dsn := global.String("db", "keystile.db", "SQLite file, or a postgres:// URL")
	actorID := global.String("actor", "keyctl", "actor name recorded in audit events")
	if err := global.Parse(args); err != nil {
		return exitUsage
	}
	if global.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: keyctl [-db FILE|URL] [-actor NAME] bootstrap|list|create|rotate|grace|revoke|origins|audit ...")
		return exitUsage
	}
	store, err := exampledb.Open(ctx, *dsn)
	if err != nil {
		fmt.Fprintln(stderr, "keyctl:", err)
		return exitStorage
	}
	defer store.DB().Close()
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store})
	if err != nil {
		fmt.Fprintln(stderr, "keyctl:", err)
		return exitStorage
	}
	c := &cli{m: m, store: store, actor: apikey.Actor{ID: *actorID, Role: apikey.Owner}, out: stdout}
	err = c.dispatch(ctx, global.Arg(0), global.Args()[1:])
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "keyctl:", err)
		return exitUsage
	case apikey.IsRequestError(err):
		fmt.Fprintln(stderr, "keyctl:", err)
		return exitRefused
	default:
		fmt.Fprintln(stderr, "keyctl: storage error:", err)
		return exitStorage
	}
}

type cli struct {
	m     *apikey.Manager
	store apikey.Store
	actor apikey.Actor
	out   io.Writer
}

func (c *cli) dispatch(ctx context.Context, command string, args []string) error {
	switch command {
	case "bootstrap":
		return c.bootstrap(ctx, args)
	case "list":
		return c.list(ctx, args)
	case "create":
		return c.create(ctx, args)
	case "rotate":
		return c.rotate(ctx, args)
	case "grace":
		return c.grace(ctx, args)
	case "revoke":
		return c.revoke(ctx, args)
	case "origins":
		return c.origins(ctx, args)
	case "audit":
		return c.audit(ctx, args)
	}
	return usagef("unknown command %q", command)
}

// parse parses flags that may stand before, between or after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func wantArgs(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	pos, err := parse(fs, args)
	if err == nil && (len(pos) < min || len(pos) > max) {
		err = usagef("%s: wrong number of arguments", fs.Name())
	}
	return pos, err
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func (c *cli) printIssued(issued ...apikey.Issued) {
	for _, k := range issued {
		fmt.Fprintln(c.out, k.View.Environment, k.Key.Type(), k.Key.Reveal())
	}
}

func (c *cli) bootstrap(ctx context.Context, args []string) error {
	envs, err := wantArgs(flag.NewFlagSet("bootstrap", flag.ContinueOnError), args, 0, 100)
	if err != nil {
		return err
	}
	if len(envs) == 0 {
		envs = apikey.BuiltinEnvironments
	}
	for _, env := range envs {
		issued, err := c.m.Bootstrap(ctx, c.actor, env)
		if errors.Is(err, apikey.ErrAlreadyBootstrapped) && len(args) == 0 {
			continue // bootstrapping the built-ins is idempotent
		}
		if err != nil {
			return err
		}
		c.printIssued(issued...)
	}
	return nil
}

func (c *cli) list(ctx context.Context, args []string) error {
	pos, err := wantArgs(flag.NewFlagSet("list", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	views, err := c.m.List(ctx, c.actor, pos[0])
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PREFIX\tSTATUS\tDEFAULT\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tNAME")
	for _, v := range views {
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", v.Prefix, v.Status, v.Default,
			strings.Join(v.Scopes, ","), date(v.CreatedAt), date(v.ExpiresAt), date(v.LastUsedAt), v.Name)
	}
	return w.Flush()
}

func date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func (c *cli) create(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	scopes := fs.String("scopes", "", `comma-separated scopes of a server key, required ("*" for full access)`)
	expires := fs.Duration("expires", 0, "lifetime of the key (default: no expiry)")
	name := fs.String("name", "", "a label for people")
	pos, err := wantArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	req := apikey.CreateRequest{Environment: pos[0], Type: apikey.KeyType(pos[1]), Name: *name}
	if *scopes != "" {
		req.Scopes = strings.Split(*scopes, ",")
	}
	if *expires != 0 {
		req.ExpiresAt = c.m.Now().Add(*expires)
	}
	issued, err := c.m.Create(ctx, c.actor, req)
	if err != nil {
		return err
	}
	c.printIssued(issued)
	return nil
}

func (c *cli) rotate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rotate", flag.ContinueOnError)
	grace := fs.Duration("grace", 0, "how long the old key keeps working, required: 0s (expire now) to 8760h")
	pos, err := wantArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	if !isSet(fs, "grace") {
		return usagef("rotate: --grace is required: 0s (expire now), 1h, 24h, 72h or 168h (the console's choices), or any duration up to %dh",
			apikey.APIPolicy.Max/time.Hour)
	}
	req := apikey.RotateRequest{Grace: *grace, ExpireNow: *grace == 0, Policy: apikey.APIPolicy}
	if len(pos) == 1 {
		req.KeyID = pos[0]
	} else {
		req.Environment, req.Type = pos[0], apikey.KeyType(pos[1])
	}
	issued, err := c.m.Rotate(ctx, c.actor, req)
	if err != nil {
		return err
	}
	c.printIssued(issued)
	return nil
}

func (c *cli) grace(ctx context.Context, args []string) error {
	pos, err := wantArgs(flag.NewFlagSet("grace", flag.ContinueOnError), args, 2, 2)
	if err != nil {
		return err
	}
	grace, err := time.ParseDuration(pos[1])
	if err != nil {
		return usagef("grace: %v", err)
	}
	view, err := c.m.ChangeGrace(ctx, c.actor, pos[0], grace, apikey.APIPolicy)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, view.Prefix, view.Status, "expires", date(view.ExpiresAt))
	return nil
}

func (c *cli) revoke(ctx context.Context, args []string) error {
	pos, err := wantArgs(flag.NewFlagSet("revoke", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	view, err := c.m.Revoke(ctx, c.actor, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, view.Prefix, view.Status)
	return nil
}

func (c *cli) origins(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("origins", flag.ContinueOnError)
	clear := fs.Bool("clear", false, `remove every allowed origin (no browser may then use publishable keys; "*" allows every origin)`)
	pos, err := wantArgs(fs, args, 1, 100)
	if err != nil {
		return err
	}
	settings, err := c.m.Settings(ctx, c.actor, pos[0])
	if len(pos) > 1 || *clear {
		settings, err = c.m.SetAllowedOrigins(ctx, c.actor, pos[0], pos[1:])
	}
	if err != nil {
		return err
	}
	if len(settings.AllowedOrigins) == 0 {
		fmt.Fprintln(c.out, "(no origin: browsers may not use publishable keys)")
	}
	for _, o := range settings.AllowedOrigins {
		fmt.Fprintln(c.out, o)
	}
	return nil
}

func (c *cli) audit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	limit := fs.Int("limit", 20, "how many events")
	pos, err := wantArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	log, ok := c.store.(storage.AuditLog)
	if !ok {
		return errors.New("this store keeps no audit log")
	}
	env := ""
	if len(pos) == 1 {
		env = pos[0]
	}
	events, err := log.Events(ctx, env, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tACTOR\tACTION\tENVIRONMENT\tKEY\tDETAIL")
	for _, e := range events {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", date(e.Time), e.Actor.ID, e.Action, e.Environment, e.KeyID, e.Detail)
	}
	return w.Flush()
}
