package main

import (
	"context"
	"io"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// The commands of the reversible switches: a key disabled and enabled, an
// account suspended and resumed.

// switchCommands are their entries of commands, in the order of the usage.
func switchCommands() []command {
	return []command{
		{name: "disable", forms: []string{"disable KEY"}, min: 1, max: 1, define: noFlags(disable),
			doc: "Switch a key off until it is enabled: it is refused (401 key_disabled) and its\n" +
				"expiry keeps running. A default key must be rotated first. Disabling a\n" +
				"disabled key changes nothing."},
		{name: "enable", forms: []string{"enable KEY"}, min: 1, max: 1, define: noFlags(enable),
			doc: "Switch a disabled key on again. Enabling a key that is not disabled changes\n" +
				"nothing."},
		{name: "suspend", forms: []string{"suspend ACCOUNT"}, min: 1, max: 1, define: noFlags(suspend),
			doc: "Suspend an account (needs --account '*'): every key of it is refused (403\n" +
				"account_suspended) and its keys and settings take no change but revocation,\n" +
				"until it is resumed; its keys keep their status. A closed account is refused."},
		{name: "resume", forms: []string{"resume ACCOUNT"}, min: 1, max: 1, define: noFlags(resume),
			doc: "Resume a suspended account (needs --account '*'): every key works as before\n" +
				"the suspension, unless it expired meanwhile."},
	}
}

func disable(ctx context.Context, c *cli, args []string) (result, error) {
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	view, err := m.Disable(ctx, c.actor(), args[0])
	if err != nil {
		return result{}, err
	}
	return viewLine(view, view.Prefix, string(view.Status)), nil
}

func enable(ctx context.Context, c *cli, args []string) (result, error) {
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	view, err := m.Enable(ctx, c.actor(), args[0])
	if err != nil {
		return result{}, err
	}
	return viewLine(view, view.Prefix, string(view.Status)), nil
}

func suspend(ctx context.Context, c *cli, args []string) (result, error) {
	return setSuspended(ctx, c, args[0], true)
}

func resume(ctx context.Context, c *cli, args []string) (result, error) {
	return setSuspended(ctx, c, args[0], false)
}

// setSuspended suspends or resumes account and prints
// {"account": ID, "suspended": BOOL}, or "ID suspended|resumed".
func setSuspended(ctx context.Context, c *cli, account string, suspended bool) (result, error) {
	if err := apikey.ValidateAccount(account); err != nil { // before the database is opened
		return result{}, err
	}
	m, err := c.open(ctx, exampledb.Migrate)
	if err != nil {
		return result{}, err
	}
	do, word := m.ResumeAccount, "resumed"
	if suspended {
		do, word = m.SuspendAccount, "suspended"
	}
	if err := do(ctx, c.actor(), account); err != nil {
		return result{}, err
	}
	return result{
		doc: struct {
			Account   string `json:"account"`
			Suspended bool   `json:"suspended"`
		}{account, suspended},
		text: func(w io.Writer) error { return printRow(w, " ", account, word) },
	}, nil
}
