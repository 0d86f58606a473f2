package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// lifetime shows or replaces the lifetime policy of an environment's keys.
func lifetime(fs *flag.FlagSet) action {
	var defaultExpiry, maxLifetime time.Duration
	fs.DurationVar(&defaultExpiry, "default-expiry", 0, "the expiry, from creation, of a key created without one, such as `720h`")
	fs.DurationVar(&maxLifetime, "max-lifetime", 0, "the longest a key may live from its creation, such as `8760h`")
	clear := fs.Bool("clear", false, "remove the policy")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		own := fs.NFlag() - countGlobals(fs)
		if own == 0 { // show
			m, err := c.open(ctx, exampledb.ReadOnly)
			if err != nil {
				return result{}, err
			}
			s, err := m.Settings(ctx, c.actor(), args[0])
			if err != nil {
				return result{}, err
			}
			return lifetimeResult(s), nil
		}
		if *clear && own > 1 {
			return result{}, usagef("lifetime: --clear removes the policy: give it alone")
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		s, err := m.SetLifetimePolicy(ctx, c.actor(), args[0],
			apikey.LifetimePolicy{DefaultExpiry: defaultExpiry, MaxLifetime: maxLifetime})
		if err != nil {
			return result{}, lifetimeFlagError(err)
		}
		return lifetimeResult(s), nil
	}
}

// lifetimeFields are the flags that set each field that
// apikey.ValidateLifetime names.
var lifetimeFields = []struct{ field, flag string }{
	{"default_expiry_seconds", "--default-expiry"},
	{"max_lifetime_seconds", "--max-lifetime"},
}

// lifetimeFlagError names the flag of the field that an error of
// apikey.ValidateLifetime names first (the error itself is kept for
// errors.Is).
func lifetimeFlagError(err error) error {
	if !errors.Is(err, apikey.ErrInvalidLifetime) {
		return err
	}
	_, rest, _ := strings.Cut(err.Error(), apikey.ErrInvalidLifetime.Error()+": ")
	for _, lf := range lifetimeFields {
		if strings.HasPrefix(rest, lf.field) {
			return fmt.Errorf("%s: %w", lf.flag, err)
		}
	}
	return err
}

// lifetimeResult is the result of the lifetime command: the environment's
// settings, or its policy for people.
func lifetimeResult(s apikey.Settings) result {
	s = withOrigins(s)
	return result{doc: s, text: func(w io.Writer) error {
		p := s.Lifetime
		defaultExpiry, maxLifetime := "none", "none"
		switch {
		case p.DefaultExpiry > 0:
			defaultExpiry = hoursOf(p.DefaultExpiry)
		case p.MaxLifetime > 0:
			defaultExpiry = hoursOf(p.MaxLifetime) + " (the max lifetime)"
		}
		if p.MaxLifetime > 0 {
			maxLifetime = hoursOf(p.MaxLifetime)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		_ = printRow(tw, "\t", "environment", s.Environment)
		_ = printRow(tw, "\t", "default expiry", defaultExpiry)
		_ = printRow(tw, "\t", "max lifetime", maxLifetime)
		return tw.Flush()
	}}
}

// hoursOf writes a duration of whole hours as "720h", any other as
// time.Duration does.
func hoursOf(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// rename names a key, or removes its name.
func rename(fs *flag.FlagSet) action {
	clear := fs.Bool("clear", false, "remove the name")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if *clear == (len(args) == 2) {
			return result{}, usagef("rename: give a NAME or --clear")
		}
		name := ""
		if len(args) == 2 {
			if name = args[1]; holdsKey(name) {
				return result{}, usagef("rename: %s", notShown)
			}
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		view, err := m.Rename(ctx, c.actor(), args[0], name)
		if err != nil {
			return result{}, err
		}
		return viewLine(view, view.Prefix, "name", view.Name), nil
	}
}
