package pgnotify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the channel storage/sqlstore notifies on.
const Channel = "keystile_changes"

// Options configure a Listener. The zero value is ready to use.
type Options struct {
	// Channel to LISTEN on. Empty means Channel.
	Channel string
	// MaxBackoff bounds the wait between reconnection attempts, which
	// starts at 100 ms and doubles. Zero means 5 seconds.
	MaxBackoff time.Duration
	// OnError, if set, receives connection errors (the connection string's
	// password is never in them: pgx redacts it). Nil drops them.
	OnError func(error)
}

// Listener keeps one connection LISTENing and signals Wake for every
// notification. It is safe for concurrent use.
type Listener struct {
	dsn    string
	opts   Options
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	conn *pgx.Conn // the current connection, for tests that cut it
}

// Listen connects to the database at connString, LISTENs on the channel and
// returns a Listener that keeps doing so, reconnecting after failures,
// until Close. The first connection must succeed within ctx.
func Listen(ctx context.Context, connString string, opts Options) (*Listener, error) {
	if opts.Channel == "" {
		opts.Channel = Channel
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	l := &Listener{dsn: connString, opts: opts, wake: make(chan struct{}, 1), done: make(chan struct{})}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.run(runCtx, conn)
	return l, nil
}

// Wake returns the channel that receives a value after notifications: at
// most one is pending, so a burst of changes wakes the reader once.
func (l *Listener) Wake() <-chan struct{} { return l.wake }

// Close stops listening and closes the connection. It is idempotent.
func (l *Listener) Close() error {
	l.cancel()
	<-l.done
	return nil
}

func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: connecting: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.opts.Channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("pgnotify: LISTEN: %w", err)
	}
	l.mu.Lock()
	l.conn = conn
	l.mu.Unlock()
	return conn, nil
}

// signal wakes the reader without ever blocking.
func (l *Listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run waits for notifications until ctx ends, reconnecting with backoff.
func (l *Listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for {
		for conn != nil {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				_ = conn.Close(context.Background())
				conn = nil
				if ctx.Err() != nil {
					return
				}
				l.opts.OnError(fmt.Errorf("pgnotify: waiting for notifications: %w", err))
				break
			}
			backoff = 100 * time.Millisecond
			l.signal()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, l.opts.MaxBackoff)
		var err error
		if conn, err = l.connect(ctx); err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return
			}
			l.opts.OnError(err)
			continue
		}
		l.signal() // changes may have been committed while we were away
	}
}
