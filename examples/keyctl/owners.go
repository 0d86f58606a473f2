package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// ownerCommand is the define of "owner": "owner keys OWNER" and "owner
// revoke OWNER" act on the keys issued to OWNER, in every environment of
// --account; "owner KEY ID" and "owner KEY --clear" name whom one key is
// issued to (a key id is never "keys" or "revoke").
func ownerCommand(fs *flag.FlagSet) action {
	set := owner(fs)
	page := pageFlags(fs)
	var lf limitFlags
	lf.register(fs)
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		paged := page.After != "" || page.Limit != apikey.DefaultPageSize
		limited := isSet(fs, "rate") || isSet(fs, "burst") || isSet(fs, "quota") || isSet(fs, "refill")
		if args[0] == "limits" {
			if len(args) != 2 {
				return result{}, usagef("owner limits: give the OWNER")
			}
			if holdsKey(args[1]) {
				return result{}, usagef("owner limits: %s", notShown)
			}
			if paged {
				return result{}, usagef("owner limits: --limit and --after are for owner keys")
			}
			return ownerLimits(ctx, c, fs, lf, args[1], limited)
		}
		if limited {
			return result{}, usagef("owner: --rate, --burst, --quota and --refill are for owner limits")
		}
		switch args[0] {
		case "keys", "revoke":
			if len(args) != 2 {
				return result{}, usagef("owner %s: give the OWNER", args[0])
			}
			if holdsKey(args[1]) {
				return result{}, usagef("owner %s: %s", args[0], notShown)
			}
			if args[0] == "keys" {
				return ownerKeys(ctx, c, args[1], *page)
			}
			if paged {
				return result{}, usagef("owner revoke: --limit and --after are for owner keys")
			}
			return revokeOwner(ctx, c, args[1])
		}
		if paged {
			return result{}, usagef("owner: --limit and --after are for owner keys")
		}
		return set(ctx, c, args)
	}
}

// ownerLimits shows the limits OWNER's keys share, or replaces them with
// those of the flags (--clear removes them).
func ownerLimits(ctx context.Context, c *cli, fs *flag.FlagSet, lf limitFlags, who string, limited bool) (result, error) {
	clear := isSet(fs, "clear")
	if !limited && !clear {
		m, err := c.open(ctx, exampledb.ReadOnly)
		if err != nil {
			return result{}, err
		}
		l, err := m.OwnerLimits(ctx, c.actor(), who)
		if err != nil {
			return result{}, err
		}
		return ownerLimitsResult(who, l, nil), nil
	}
	if clear && limited {
		return result{}, usagef("owner limits: --clear removes the owner's limits: give it alone")
	}
	l, err := lf.limits(fs)
	if err != nil {
		return result{}, err
	}
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	n, err := m.SetOwnerLimits(ctx, c.actor(), who, l)
	if err != nil {
		return result{}, limitsFlagError(err)
	}
	saved, err := apikey.ValidateOwnerLimits(l) // as stored
	if err != nil {
		return result{}, err
	}
	return ownerLimitsResult(who, saved, &n), nil
}

// ownerLimitsResult is the result of owner limits: the owner, the limits
// its keys share and, after a change, how many keys carry them.
func ownerLimitsResult(who string, l apikey.Limits, keys *int) result {
	doc := struct {
		Owner  string        `json:"owner"`
		Limits apikey.Limits `json:"limits"`
		Keys   *int          `json:"keys,omitempty"`
	}{who, l, keys}
	return result{doc: doc, text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		_ = printRow(tw, "\t", "owner", who)
		for _, row := range limitRows(l)[:2] { // rate and quota: an owner has no allowlist
			_ = printRow(tw, "\t", row[0], row[1])
		}
		if keys != nil {
			_ = printRow(tw, "\t", "keys", fmt.Sprint(*keys))
		}
		return tw.Flush()
	}}
}

func ownerKeys(ctx context.Context, c *cli, who string, page apikey.Page) (result, error) {
	m, err := c.open(ctx, exampledb.ReadOnly)
	if err != nil {
		return result{}, err
	}
	list, err := m.OwnerKeys(ctx, c.actor(), who, page)
	if err != nil {
		return result{}, err
	}
	return keyTable(list, "CREATED", func(v apikey.View) time.Time { return v.CreatedAt }), nil
}

func revokeOwner(ctx context.Context, c *cli, who string) (result, error) {
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	res, err := m.RevokeOwner(ctx, c.actor(), who)
	if err != nil {
		return result{}, err
	}
	return result{doc: res, text: func(w io.Writer) error {
		if err := printRow(w, " ", "revoked", fmt.Sprint(res.Revoked), "keys of", who); err != nil {
			return err
		}
		for _, p := range res.SkippedDefaults {
			if err := printRow(w, " ", "skipped default key", p+": rotate it, then revoke the old key"); err != nil {
				return err
			}
		}
		return nil
	}}, nil
}

func expiring(fs *flag.FlagSet) action {
	within := fs.Duration("within", 0, "list the keys that expire within `DURATION` from now (required; up to 8784h)")
	env := fs.String("env", "", "list `ENV`'s keys only")
	page := pageFlags(fs)
	return func(ctx context.Context, c *cli, _ []string) (result, error) {
		if *within == 0 {
			return result{}, usagef("expiring: --within is required, such as --within 72h")
		}
		m, err := c.open(ctx, exampledb.ReadOnly)
		if err != nil {
			return result{}, err
		}
		list, err := m.Expiring(ctx, c.actor(), apikey.ExpiringRequest{Environment: *env, Within: *within}, *page)
		if err != nil {
			return result{}, err
		}
		return keyTable(list, "EXPIRES", func(v apikey.View) time.Time { return v.ExpiresAt }), nil
	}
}

func purge(fs *flag.FlagSet) action {
	olderThan := fs.Duration("older-than", 0, "delete the keys revoked or expired more than `DURATION` ago (required)")
	return func(ctx context.Context, c *cli, _ []string) (result, error) {
		if *olderThan <= 0 {
			return result{}, usagef("purge: --older-than is required and positive, such as --older-than 720h")
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		n, err := m.Purge(ctx, c.actor(), *olderThan)
		if err != nil {
			return result{}, err
		}
		return result{
			doc: struct {
				Deleted int `json:"deleted"`
			}{n},
			text: func(w io.Writer) error { return printRow(w, " ", "deleted", fmt.Sprint(n), "keys") },
		}, nil
	}
}

// keyTable prints a page of keys of several environments, with one date
// column (when, named column), and the next page's cursor.
func keyTable(list apikey.KeyList, column string, when func(apikey.View) time.Time) result {
	list.Keys = nonNil(list.Keys)
	return result{doc: list, text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		_ = printRow(tw, "\t", "PREFIX", "ENVIRONMENT", "STATUS", "DEFAULT", "SCOPES", column, "NAME", "OWNER")
		for _, v := range list.Keys {
			_ = printRow(tw, "\t", v.Prefix, v.Environment, string(v.Status), fmt.Sprint(v.Default),
				strings.Join(v.Scopes, ","), date(when(v)), v.Name, v.Owner)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return nextPage(w, list.Next)
	}}
}
