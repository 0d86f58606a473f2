// Package pgnotify wakes keystile's change-feed readers the moment a
// PostgreSQL store commits a change, instead of at their next poll.
//
// storage/sqlstore, with the Postgres dialect, sends pg_notify on the
// channel "keystile_changes" (sqlstore.NotifyChannel) in the same
// transaction as every change it writes. A Listener holds one dedicated
// connection, LISTENs on that channel, and signals its Wake channel for
// every notification; pass it to middleware.Options.FeedWake and a
// revocation reaches every process in milliseconds:
//
//	l, err := pgnotify.Listen(ctx, dsn, pgnotify.Options{})
//	...
//	defer l.Close()
//	v, err := middleware.New(middleware.Options{Store: store, FeedWake: l.Wake()})
//
// Polling every FeedInterval goes on as the fallback: a notification can be
// lost while the connection is down (the Listener reconnects with backoff
// and signals once more when it is back, since changes may have been
// missed), and some connection poolers (PgBouncer in transaction mode)
// do not pass LISTEN through. Point the Listener at the database directly,
// or rely on polling.
//
// This is the only keystile package that imports a PostgreSQL driver
// (github.com/jackc/pgx/v5); it is a module of its own, so that importing
// apikey, middleware or storage never brings pgx into a service's module
// graph.
package pgnotify
