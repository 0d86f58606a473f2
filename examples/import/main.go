// Command import migrates the API keys that a service issued before it
// adopted keystile: "sk_live_" and 32 base62 characters, stored in a
// SQLite table of their SHA-256 digests, as many services keep them:
//
//	CREATE TABLE api_keys (
//	    id          TEXT PRIMARY KEY,  -- the service's own key id
//	    customer_id TEXT NOT NULL,     -- whom the key was issued to
//	    key_sha256  TEXT NOT NULL,     -- hex SHA-256 of the key string
//	    scopes      TEXT NOT NULL,     -- comma-separated; '' for full access
//	    revoked     INTEGER NOT NULL DEFAULT 0
//	);
//
// It imports every key that is not revoked into keystile's production
// environment (apikey.Manager.Import: the digest, never the key, by an
// operator acting across accounts, the service's own act), then shows
// an old key working through the middleware, which declares the old format
// (middleware.KeyOptions.Imported), and rotates it into a keystile key: the
// old key keeps working for a day of grace. Running it again imports
// nothing twice.
//
//	go run ./examples/import                                # a demo table of its own, in a temporary directory
//	go run ./examples/import -legacy old.db -db keystile.db # your table, your keystile database
//
// With -legacy, it imports and stops: it knows no old key to present. Keys
// are printed by displayable prefix only.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite", pure Go

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
	"github.com/keystile/keystile/middleware"
)

// LegacyFormat is the format of the service's old keys, as its middleware
// declares it.
var LegacyFormat = apikey.ImportFormat{Prefix: "sk_live_", Length: 32}

// actor is who the migration acts as in the service's account, in the
// audit log: it bootstraps production and rotates a key.
var actor = apikey.Actor{ID: "import-example", Role: apikey.Owner}

// operator is who imports: importing is the service's act, never a
// tenant's (apikey.Manager.Import), so the migration imports as an
// operator acting across accounts and names the account of each key.
var operator = apikey.Actor{ID: "import-example", Role: apikey.Owner, Account: apikey.AnyAccount}

func main() {
	legacy := flag.String("legacy", "", "the SQLite file of the old api_keys table (default: a demo table in a temporary directory)")
	db := flag.String("db", "", "keystile's database: a SQLite file or a postgres:// URL (default: in the temporary directory)")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *legacy, *db); err != nil {
		log.Fatal(err)
	}
}

// run migrates the table at legacyPath into the keystile database at dsn
// and, for the demo table, shows an old key at work and rotates it.
func run(ctx context.Context, out io.Writer, legacyPath, dsn string) error {
	var demoKey string // an old key the demo knows, "" with -legacy
	if legacyPath == "" || dsn == "" {
		dir, err := os.MkdirTemp("", "keystile-import-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if legacyPath == "" {
			legacyPath = filepath.Join(dir, "legacy.db")
			if demoKey, err = createDemoTable(ctx, legacyPath); err != nil {
				return err
			}
		}
		if dsn == "" {
			dsn = filepath.Join(dir, "keystile.db")
		}
	}

	legacy, err := sql.Open("sqlite", "file:"+legacyPath+"?mode=ro")
	if err != nil {
		return err
	}
	defer legacy.Close()
	store, err := exampledb.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.DB().Close()
	var validator *middleware.Validator // told of the Manager's changes, once started
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: store, OnEvent: func(e apikey.Event) {
		if validator != nil {
			validator.Invalidate(e)
		}
	}})
	if err != nil {
		return err
	}
	if _, err := m.Bootstrap(ctx, actor, apikey.Production); err != nil && !errors.Is(err, apikey.ErrAlreadyBootstrapped) {
		return err
	}

	report, err := Migrate(ctx, legacy, m, apikey.Production)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "imported %d keys, %d imported before, %d revoked skipped\n", report.Imported, report.Existing, report.Revoked)
	if demoKey == "" {
		return nil
	}

	validator, err = middleware.New(middleware.Options{
		Store: store,
		Keys:  middleware.KeyOptions{Imported: []apikey.ImportFormat{LegacyFormat}},
	})
	if err != nil {
		return err
	}
	defer validator.Close()
	api := validator.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		fmt.Fprintf(w, "%s owner=%s imported=%t", id.Prefix, id.Owner, id.Imported)
	}))
	call := func(label, key string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/whoami", nil)
		r.Header.Set(middleware.HeaderAPIKey, key)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		line := fmt.Sprintf("%s: %d %s", label, w.Code, strings.TrimSpace(w.Body.String()))
		if exp := w.Header().Get(middleware.HeaderKeyExpires); exp != "" {
			line += " (expires " + exp + ")"
		}
		fmt.Fprintln(out, line)
	}
	call("old key", demoKey)

	// Rotate the old key into a keystile key, with a day of grace.
	id := apikey.ImportedID(apikey.ImportDigest(demoKey))
	issued, err := m.Rotate(ctx, actor, apikey.RotateRequest{KeyID: id, Grace: 24 * time.Hour})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rotated %s into %s (hand the new key to its owner, once)\n", apikey.Prefix(apikey.Server, id), issued.Key.Prefix())
	call("old key, in its grace", demoKey)
	call("new key", issued.Key.Reveal())
	return nil
}

// Report counts what Migrate did.
type Report struct {
	Imported int // keys imported by this run
	Existing int // keys imported before (Manager.Import: ErrConflict)
	Revoked  int // revoked keys, not imported
}

// Migrate imports every key of the legacy api_keys table that is not
// revoked into environment env, by its digest: as a server key with its
// scopes ("*" for an empty list), its customer as owner, and its old id as
// name and metadata. A key imported before is counted, not imported again,
// so that a migration can run again until it went through.
func Migrate(ctx context.Context, legacy *sql.DB, m *apikey.Manager, env string) (Report, error) {
	var report Report
	rows, err := legacy.QueryContext(ctx, `SELECT id, customer_id, key_sha256, scopes, revoked FROM api_keys ORDER BY id`)
	if err != nil {
		return report, fmt.Errorf("reading api_keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, customer, digestHex, scopes string
		var revoked bool
		if err := rows.Scan(&id, &customer, &digestHex, &scopes, &revoked); err != nil {
			return report, fmt.Errorf("reading api_keys: %w", err)
		}
		if revoked {
			report.Revoked++
			continue
		}
		var digest [32]byte
		if n, err := hex.Decode(digest[:], []byte(digestHex)); err != nil || n != len(digest) {
			return report, fmt.Errorf("api_keys row %q: key_sha256 is not a hex SHA-256 digest", id)
		}
		req := apikey.ImportRequest{
			Account: apikey.DefaultAccount, Environment: env, Type: apikey.Server, Digest: digest, Owner: customer,
			Name: "legacy " + id, Metadata: map[string]string{"legacy_id": id}, Scopes: []string{apikey.AllScopes},
		}
		if scopes != "" {
			req.Scopes = strings.Split(scopes, ",")
		}
		_, err := m.Import(ctx, operator, req)
		switch {
		case errors.Is(err, apikey.ErrConflict):
			report.Existing++
		case err != nil:
			return report, fmt.Errorf("api_keys row %q: %w", id, err)
		default:
			report.Imported++
		}
	}
	return report, rows.Err()
}

// createDemoTable writes a legacy table of three keys, one revoked, as a
// service before keystile would have, and returns the first key.
func createDemoTable(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE api_keys (
		id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, key_sha256 TEXT NOT NULL,
		scopes TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)`); err != nil {
		return "", err
	}
	var first string
	for i, row := range []struct {
		customer, scopes string
		revoked          bool
	}{{"cus_1001", "", false}, {"cus_1002", "invoices:read", false}, {"cus_1003", "", true}} {
		key := "sk_live_" + rand.Text()[:26] + rand.Text()[:6] // 32 base32 characters, within base62
		if i == 0 {
			first = key
		}
		digest := apikey.ImportDigest(key)
		if _, err := db.ExecContext(ctx, `INSERT INTO api_keys VALUES (?, ?, ?, ?, ?)`,
			fmt.Sprintf("key_%d", i+1), row.customer, hex.EncodeToString(digest[:]), row.scopes, row.revoked); err != nil {
			return "", err
		}
	}
	return first, nil
}
