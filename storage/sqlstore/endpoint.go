package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/storage"
)

var _ storage.EndpointStore = (*Store)(nil)

// endpointsV15 is version 15: the webhook endpoints that tenants register
// (storage.EndpointStore).
//   - keystile_endpoints: one row per endpoint, by its primary key id;
//     the unique index (account, id) answers an account's page and its
//     count (at most apikey.MaxEndpoints rows). actions is a JSON array
//     (NULL for none); secret and previous_secret hold what the Manager
//     gives (a "whsec_" secret, or its sealed form when secret_sealed);
//     start_cursor is the stream's cursor when the endpoint was created.
//   - keystile_events_account_cursor (account, seq): an account's events
//     in stream order, from a cursor (AccountEventsAfter). On a large
//     PostgreSQL table, create it with CREATE INDEX CONCURRENTLY
//     beforehand under this name (IF NOT EXISTS skips it).
//   - keystile_dead_letters.state: dead, replaying or delivered
//     (storage.ReplayLog); letters of earlier versions are dead.
func endpointsV15(d Dialect) []string {
	text, blobType := `TEXT COLLATE "C"`, "BYTEA"
	if d == SQLite {
		text, blobType = "TEXT", "BLOB"
	}
	return []string{
		`CREATE TABLE keystile_endpoints (
			id              ` + text + ` NOT NULL PRIMARY KEY,
			account         ` + text + ` NOT NULL,
			url             TEXT    NOT NULL,
			actions         TEXT,
			environment     TEXT    NOT NULL,
			enabled         BOOLEAN NOT NULL,
			created_at      BIGINT  NOT NULL,
			updated_at      BIGINT  NOT NULL,
			start_cursor    BIGINT  NOT NULL,
			secret          ` + blobType + ` NOT NULL,
			secret_sealed   BOOLEAN NOT NULL,
			previous_secret ` + blobType + `,
			previous_until  BIGINT,
			revision        BIGINT  NOT NULL
		)`,
		`CREATE UNIQUE INDEX keystile_endpoints_account ON keystile_endpoints (account, id)`,
		`CREATE INDEX IF NOT EXISTS keystile_events_account_cursor ON keystile_events (account, seq)`,
		`ALTER TABLE keystile_dead_letters ADD COLUMN state TEXT NOT NULL DEFAULT 'dead'`,
	}
}

const endpointColumns = `id, account, url, actions, environment, enabled, created_at, updated_at, start_cursor,
	secret, secret_sealed, previous_secret, previous_until, revision`

// The statements of the endpoints, in '?' form (rebound per dialect).
const (
	// The primary key.
	endpointQuery = `SELECT ` + endpointColumns + ` FROM keystile_endpoints WHERE id = ?`
	// The primary key, from the cursor.
	allEndpointsQuery = `SELECT ` + endpointColumns + ` FROM keystile_endpoints WHERE id > ? ORDER BY id LIMIT ?`
	// keystile_endpoints_account (account, id), from the cursor.
	accountEndpointsQuery = `SELECT ` + endpointColumns + ` FROM keystile_endpoints
		WHERE account = ? AND id > ? ORDER BY id LIMIT ?`
	// keystile_endpoints_account: a range of at most apikey.MaxEndpoints.
	countEndpointsQuery = `SELECT COUNT(*) FROM keystile_endpoints WHERE account = ?`
	insertEndpointQuery = `INSERT INTO keystile_endpoints (` + endpointColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	updateEndpointQuery = `UPDATE keystile_endpoints SET url = ?, actions = ?, environment = ?, enabled = ?,
		updated_at = ?, secret = ?, secret_sealed = ?, previous_secret = ?, previous_until = ?, revision = revision + 1
		WHERE id = ? AND revision = ?`
	deleteEndpointQuery = `DELETE FROM keystile_endpoints WHERE id = ? AND revision = ?`
	// A deleted endpoint's delivery state: the primary keys of
	// keystile_deliveries (endpoint) and keystile_dead_letters (endpoint,
	// event_cursor).
	deleteEndpointDeliveryQuery = `DELETE FROM keystile_deliveries WHERE endpoint = ?`
	deleteEndpointLettersQuery  = `DELETE FROM keystile_dead_letters WHERE endpoint = ?`
	endpointExistsQuery         = `SELECT COUNT(*) FROM keystile_endpoints WHERE id = ?`
	// The primary key of keystile_events: the stream's end.
	streamEndQuery = `SELECT COALESCE(MAX(seq), 0) FROM keystile_events`
	// keystile_events_account_cursor (account, seq), from the cursor.
	accountEventsAfterQuery = `SELECT seq, ` + eventColumns + ` FROM keystile_events
		WHERE account = ? AND seq > ? ORDER BY seq LIMIT ?`
)

// Endpoint implements storage.EndpointStore.
func (s *Store) Endpoint(ctx context.Context, id string) (apikey.WebhookEndpoint, error) {
	if err := ctx.Err(); err != nil {
		return apikey.WebhookEndpoint{}, s.wrap(ctx, "endpoint", err)
	}
	e, err := scanEndpoint(s.db.QueryRowContext(ctx, s.d.rebind(endpointQuery), id))
	if errors.Is(err, sql.ErrNoRows) {
		return apikey.WebhookEndpoint{}, apikey.ErrNotFound
	}
	return e, s.wrap(ctx, "endpoint", err)
}

// Endpoints implements storage.EndpointStore.
func (s *Store) Endpoints(ctx context.Context, q apikey.EndpointQuery) ([]apikey.WebhookEndpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "endpoints", err)
	}
	out := []apikey.WebhookEndpoint{}
	if q.Limit <= 0 {
		return out, nil
	}
	var (
		rows *sql.Rows
		err  error
	)
	if q.Account == "" {
		rows, err = s.db.QueryContext(ctx, s.d.rebind(allEndpointsQuery), q.After, q.Limit)
	} else {
		rows, err = s.db.QueryContext(ctx, s.d.rebind(accountEndpointsQuery), q.Account, q.After, q.Limit)
	}
	if err != nil {
		return nil, s.wrap(ctx, "endpoints", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, s.wrap(ctx, "endpoints", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "endpoints", err)
	}
	return out, nil
}

func scanEndpoint(row interface{ Scan(...any) error }) (apikey.WebhookEndpoint, error) {
	var (
		e                apikey.WebhookEndpoint
		actions          sql.NullString
		created, updated int64
		secret, previous []byte
		previousUntil    sql.NullInt64
	)
	if err := row.Scan(&e.ID, &e.Account, &e.URL, &actions, &e.Environment, &e.Enabled, &created, &updated, &e.Start,
		&secret, &e.SecretSealed, &previous, &previousUntil, &e.Revision); err != nil {
		return apikey.WebhookEndpoint{}, err
	}
	if actions.Valid {
		if err := json.Unmarshal([]byte(actions.String), &e.Actions); err != nil {
			return apikey.WebhookEndpoint{}, fmt.Errorf("endpoint %s: actions: %w", e.ID, err)
		}
	}
	e.CreatedAt, e.UpdatedAt, e.PreviousSecretUntil = fromMicros(created), fromMicros(updated), fromNullMicros(previousUntil)
	e.Secret, e.PreviousSecret = apikey.OpaqueBytes(secret), apikey.OpaqueBytes(previous)
	return e, nil
}

// encodeActions stores actions as a JSON array, none as NULL.
func encodeActions(actions []apikey.Action) (any, error) {
	if len(actions) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(actions)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// ApplyEndpoint implements storage.EndpointStore: one transaction that
// first takes the revision counter's lock as Apply does (so that its
// events join the stream in commit order, and the count of an account's
// endpoints and the stream's end cannot change under it), checks the
// account is open, appends the events, then writes the endpoint: an
// insert after counting the account's endpoints, with the stream's end as
// its start; an update or delete conditional on its revision (a delete
// with the endpoint's rows of keystile_deliveries and keystile_dead_letters).
func (s *Store) ApplyEndpoint(ctx context.Context, c apikey.EndpointChange) (apikey.WebhookEndpoint, error) {
	if err := ctx.Err(); err != nil {
		return apikey.WebhookEndpoint{}, s.wrap(ctx, "apply endpoint", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return apikey.WebhookEndpoint{}, s.wrap(ctx, "apply endpoint", err)
	}
	e, err := s.applyEndpoint(ctx, tx, c)
	if err != nil {
		_ = tx.Rollback()
		return apikey.WebhookEndpoint{}, err
	}
	if err := tx.Commit(); err != nil {
		return apikey.WebhookEndpoint{}, s.writeError(ctx, "apply endpoint: commit", err, "the change lost a race with another writer")
	}
	return e, nil
}

func (s *Store) applyEndpoint(ctx context.Context, tx *sql.Tx, c apikey.EndpointChange) (apikey.WebhookEndpoint, error) {
	var top int64
	if err := tx.QueryRowContext(ctx, s.q.bump, 0).Scan(&top); err != nil {
		return apikey.WebhookEndpoint{}, s.writeError(ctx, "apply endpoint: taking the lock", err, "the change lost a race with another writer")
	}
	if c.OpenAccount != "" {
		var closed, suspended int64
		if err := tx.QueryRowContext(ctx, s.q.closedAccount, c.OpenAccount).Scan(&closed, &suspended); err != nil {
			return apikey.WebhookEndpoint{}, s.wrap(ctx, "apply endpoint: checking the account is open", err)
		}
		switch {
		case closed > 0:
			return apikey.WebhookEndpoint{}, fmt.Errorf("%w: %s", apikey.ErrAccountClosed, c.OpenAccount)
		case suspended > 0:
			return apikey.WebhookEndpoint{}, fmt.Errorf("%w: %s", apikey.ErrAccountSuspended, c.OpenAccount)
		}
	}
	if err := s.appendEvents(ctx, tx, c.Events); err != nil {
		return apikey.WebhookEndpoint{}, err
	}
	switch {
	case c.Put != nil && c.Put.Revision == 0:
		e := c.Put.Clone()
		var n int
		if err := tx.QueryRowContext(ctx, s.d.rebind(countEndpointsQuery), e.Account).Scan(&n); err != nil {
			return apikey.WebhookEndpoint{}, s.wrap(ctx, "apply endpoint: counting", err)
		}
		if n >= c.Max {
			return apikey.WebhookEndpoint{}, fmt.Errorf("%w: account %s has %d", apikey.ErrTooManyEndpoints, e.Account, c.Max)
		}
		if err := tx.QueryRowContext(ctx, s.d.rebind(streamEndQuery)).Scan(&e.Start); err != nil {
			return apikey.WebhookEndpoint{}, s.wrap(ctx, "apply endpoint: reading the stream's end", err)
		}
		actions, err := encodeActions(e.Actions)
		if err != nil {
			return apikey.WebhookEndpoint{}, err
		}
		e.Revision = 1
		if _, err := tx.ExecContext(ctx, s.d.rebind(insertEndpointQuery), e.ID, e.Account, e.URL, actions, e.Environment,
			e.Enabled, micros(e.CreatedAt), micros(e.UpdatedAt), e.Start, e.Secret.Bytes(), e.SecretSealed,
			blob(e.PreviousSecret.Bytes()), nullMicros(e.PreviousSecretUntil), e.Revision); err != nil {
			return apikey.WebhookEndpoint{}, s.writeError(ctx, "apply endpoint: inserting", err, "endpoint "+e.ID+" exists")
		}
		return e, nil
	case c.Put != nil:
		e := c.Put.Clone()
		actions, err := encodeActions(e.Actions)
		if err != nil {
			return apikey.WebhookEndpoint{}, err
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(updateEndpointQuery), e.URL, actions, e.Environment, e.Enabled,
			micros(e.UpdatedAt), e.Secret.Bytes(), e.SecretSealed, blob(e.PreviousSecret.Bytes()),
			nullMicros(e.PreviousSecretUntil), e.ID, e.Revision)
		if err := s.endpointWritten(ctx, tx, e.ID, res, err); err != nil {
			return apikey.WebhookEndpoint{}, err
		}
		e.Revision++
		return e, nil
	case c.Delete != nil:
		res, err := tx.ExecContext(ctx, s.d.rebind(deleteEndpointQuery), c.Delete.ID, c.Delete.Revision)
		if err := s.endpointWritten(ctx, tx, c.Delete.ID, res, err); err != nil {
			return apikey.WebhookEndpoint{}, err
		}
		for _, q := range []string{deleteEndpointDeliveryQuery, deleteEndpointLettersQuery} {
			if _, err := tx.ExecContext(ctx, s.d.rebind(q), c.Delete.DeliveryName()); err != nil {
				return apikey.WebhookEndpoint{}, s.writeError(ctx, "apply endpoint: deleting the delivery state", err,
					"the change lost a race with another writer")
			}
		}
		return apikey.WebhookEndpoint{}, nil
	}
	return apikey.WebhookEndpoint{}, nil
}

// endpointWritten checks a conditional write of endpoint id: no row means
// ErrNotFound when it does not exist, else ErrConflict.
func (s *Store) endpointWritten(ctx context.Context, tx *sql.Tx, id string, res sql.Result, err error) error {
	if err != nil {
		return s.writeError(ctx, "apply endpoint: writing", err, "endpoint "+id+" changed since it was read")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(ctx, "apply endpoint: writing", err)
	}
	if n == 1 {
		return nil
	}
	var exists int64
	if err := tx.QueryRowContext(ctx, s.d.rebind(endpointExistsQuery), id).Scan(&exists); err != nil {
		return s.wrap(ctx, "apply endpoint: writing", err)
	}
	if exists == 0 {
		return fmt.Errorf("%w: endpoint %s", apikey.ErrNotFound, id)
	}
	return fmt.Errorf("%w: endpoint %s changed since it was read", apikey.ErrConflict, id)
}

// AccountEventsAfter implements storage.EndpointStore: a range scan of
// keystile_events_account_cursor from the cursor.
func (s *Store) AccountEventsAfter(ctx context.Context, account string, cursor int64, limit int) ([]apikey.StreamEvent, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, cursor, s.wrap(ctx, "account events after", err)
	}
	if limit <= 0 {
		limit = apikey.DefaultStreamLimit
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(accountEventsAfterQuery), account, cursor, limit)
	if err != nil {
		return nil, cursor, s.wrap(ctx, "account events after", err)
	}
	return s.scanStream(ctx, rows, cursor, "account events after")
}
