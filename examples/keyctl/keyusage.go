package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware/admin"
)

// usageCount is a usage count with the displayable prefix of its key.
type usageCount struct {
	apikey.UsageCount
	// Prefix is the key's displayable prefix; empty for a key the store
	// no longer has.
	Prefix string `json:"prefix,omitempty"`
}

func keyUsage(fs *flag.FlagSet) action {
	env := fs.String("env", "", "read the usage of every key of `ENV` instead of one KEY")
	from := fs.String("from", "", "the start of the range, a `TIME` such as 2030-01-01T00:00:00Z (RFC 3339; default: 24 hours before --to)")
	to := fs.String("to", "", "the end of the range, a `TIME` (RFC 3339; default: now)")
	page := pageFlags(fs)
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if (*env == "") == (len(args) == 0) {
			return result{}, usagef("usage: give a KEY or --env ENV")
		}
		end := time.Now()
		if *to != "" {
			t, err := time.Parse(time.RFC3339, *to)
			if err != nil {
				return result{}, usagef(`usage: --to: want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`)
			}
			end = t
		}
		start := end.Add(-24 * time.Hour)
		if *from != "" {
			t, err := time.Parse(time.RFC3339, *from)
			if err != nil {
				return result{}, usagef(`usage: --from: want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`)
			}
			start = t
		}
		if end.Sub(start) > admin.MaxUsageRange { // as the management API bounds it
			return result{}, fmt.Errorf("%w: --from and --to may be at most %d days apart", apikey.ErrInvalidTimeRange, admin.MaxUsageRange/(24*time.Hour))
		}
		req := apikey.UsageRequest{Environment: *env, From: start, To: end}
		if len(args) == 1 {
			req.KeyID = args[0]
		}
		m, err := c.open(ctx, exampledb.ReadOnly)
		if err != nil {
			return result{}, err
		}
		list, err := m.Usage(ctx, c.actor(), req, *page)
		if err != nil {
			return result{}, err
		}
		return countsResult(ctx, c, list)
	}
}

// countsResult names the key of each count by its displayable prefix,
// looking each key up once: at most as many lookups as counts, which
// --limit bounds.
func countsResult(ctx context.Context, c *cli, list apikey.UsageList) (result, error) {
	prefixes := map[string]string{}
	docs := make([]usageCount, len(list.Counts))
	for i, u := range list.Counts {
		prefix, ok := prefixes[u.KeyID]
		if !ok {
			v, err := c.m.Get(ctx, c.actor(), u.KeyID)
			switch {
			case err == nil:
				prefix = v.Prefix
			case !errors.Is(err, apikey.ErrNotFound):
				return result{}, err
			}
			prefixes[u.KeyID] = prefix // "" for a key the store no longer has
		}
		docs[i] = usageCount{UsageCount: u, Prefix: prefix}
	}
	return result{
		doc: struct {
			Counts []usageCount `json:"counts"`
			Next   string       `json:"next,omitempty"`
		}{docs, list.Next},
		text: func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			_ = printRow(tw, "\t", "HOUR", "KEY", "OUTCOME", "COUNT")
			for _, u := range docs {
				key := u.Prefix
				if key == "" {
					key = "(unknown key) " + u.KeyID
				}
				_ = printRow(tw, "\t", date(u.Hour), key, u.Outcome, fmt.Sprint(u.Count))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return nextPage(w, list.Next)
		},
	}, nil
}
