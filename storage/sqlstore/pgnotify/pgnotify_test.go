package pgnotify_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/storage/sqlstore/pgnotify"
)

// dsn returns the test server's connection string: scripts/test.sh starts
// one and sets KEYSTILE_POSTGRES_DSN. Under CI=true its absence fails.
func dsn(t *testing.T) string {
	t.Helper()
	d := os.Getenv("KEYSTILE_POSTGRES_DSN")
	if d == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KEYSTILE_POSTGRES_DSN is empty in CI: run ./scripts/test.sh, which starts a PostgreSQL server")
		}
		t.Skip("needs a PostgreSQL server: set KEYSTILE_POSTGRES_DSN or run ./scripts/test.sh")
	}
	return d
}

func notify(t *testing.T, conn *pgx.Conn, channel string) {
	t.Helper()
	_, err := conn.Exec(context.Background(), "SELECT pg_notify($1, '')", channel)
	require.NoError(t, err)
}

func waitWake(t *testing.T, l *pgnotify.Listener, within time.Duration) {
	t.Helper()
	select {
	case <-l.Wake():
	case <-time.After(within):
		t.Fatalf("no wake within %s", within)
	}
}

// TestWakeOnNotify: a notification on the channel wakes the reader; a
// burst wakes it once; other channels do not.
func TestWakeOnNotify(t *testing.T) {
	ctx := context.Background()
	channel := "keystile_test_" + time.Now().Format("150405.000000000")[7:]
	l, err := pgnotify.Listen(ctx, dsn(t), pgnotify.Options{Channel: channel})
	require.NoError(t, err)
	defer l.Close()
	sender, err := pgx.Connect(ctx, dsn(t))
	require.NoError(t, err)
	defer sender.Close(ctx)

	notify(t, sender, channel)
	waitWake(t, l, 5*time.Second)
	for range 10 {
		notify(t, sender, channel)
	}
	waitWake(t, l, 5*time.Second)
	time.Sleep(100 * time.Millisecond) // let the rest of the burst arrive
	select {
	case <-l.Wake():
		// a second pending wake is allowed once the first was taken
	default:
	}
	notify(t, sender, "another_channel")
	select {
	case <-l.Wake():
		t.Fatal("woken by another channel")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestReconnects: when the server ends the listening connection, the
// Listener reconnects, signals once (changes may have been missed) and
// hears notifications again.
func TestReconnects(t *testing.T) {
	ctx := context.Background()
	channel := "keystile_test_re_" + time.Now().Format("150405.000000000")[7:]
	l, err := pgnotify.Listen(ctx, dsn(t), pgnotify.Options{Channel: channel, MaxBackoff: 200 * time.Millisecond})
	require.NoError(t, err)
	defer l.Close()
	admin, err := pgx.Connect(ctx, dsn(t))
	require.NoError(t, err)
	defer admin.Close(ctx)

	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%' AND datname = current_database()`)
	require.NoError(t, err)
	waitWake(t, l, 5*time.Second) // the wake after reconnecting
	require.Eventually(t, func() bool {
		notify(t, admin, channel)
		select {
		case <-l.Wake():
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, 5*time.Second, 10*time.Millisecond, "notifications are heard again")
}

// TestListenFailsFast: a bad connection string is an error at Listen.
func TestListenFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgnotify.Listen(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", pgnotify.Options{})
	require.Error(t, err)
}
