// Package admintest holds the management API's route table: requests of
// every route of package admin, over storage/memory, with the status and
// problem code each must answer. Package admin's TestRoutes runs it, and
// the openapitest module (middleware/admin/openapitest) runs it again to
// check every request and response against the OpenAPI document with an
// OpenAPI validator, which this module does not require.
//
// It is test support for this repository: it imports testify.
package admintest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
	"github.com/keystile/keystile/middleware/problem"
	"github.com/keystile/keystile/storage/memory"
)

// The callers of the table, in the default account.
var (
	Owner    = admin.Caller{Actor: apikey.Actor{ID: "alice", Role: apikey.Owner}}
	ReadOnly = admin.Caller{Actor: apikey.Actor{ID: "carol", Role: apikey.ReadOnly}}
	// Operator acts across accounts (the account routes).
	Operator = admin.Caller{Actor: apikey.Actor{ID: "ops", Role: apikey.Owner}, Operator: true}
)

// OtherAccount is a second account, which the operator closes.
const OtherAccount = "globex"

// UsageDay is the day of the usage counts of a Fixture.
var UsageDay = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Fixture is a management API over a memory store, with an audit log,
// for a single-tenant service (Options.SingleAccount) that lets accounts be
// closed (Options.CloseAccounts): production and staging are bootstrapped
// in the default account, and production in OtherAccount.
type Fixture struct {
	Store   *memory.Store
	Manager *apikey.Manager
	API     *admin.API
	// Caller is the caller of the next request.
	Caller admin.Caller
	// Server and Client are production's default keys, Staging staging's
	// (server, client), and Extra a scoped server key in production.
	Server, Client, Extra apikey.Issued
	Staging               []apikey.Issued
	// Quiet is a scoped server key in staging, rotated out an hour ago
	// and used by no caller since.
	Quiet apikey.Issued
	// Endpoint is a webhook endpoint of the account, with a dead letter
	// of the event evt_default_1.
	Endpoint apikey.IssuedEndpoint
}

// NewFixture returns a new Fixture.
func NewFixture(t testing.TB) *Fixture {
	t.Helper()
	ctx := context.Background()
	f := &Fixture{Store: memory.New(), Caller: Owner}
	var err error
	f.Manager, err = apikey.NewManager(apikey.ManagerOptions{Store: f.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams}})
	require.NoError(t, err)
	keys, err := f.Manager.Bootstrap(ctx, Owner.Actor, apikey.Production)
	require.NoError(t, err)
	f.Server, f.Client = keys[0], keys[1]
	f.Staging, err = f.Manager.Bootstrap(ctx, Owner.Actor, apikey.Staging)
	require.NoError(t, err)
	f.Extra, err = f.Manager.Create(ctx, Owner.Actor, apikey.CreateRequest{
		Environment: apikey.Production, Type: apikey.Server, Name: "worker", Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	_, err = f.Manager.Bootstrap(ctx, apikey.Actor{ID: "bob", Role: apikey.Owner, Account: OtherAccount}, apikey.Production)
	require.NoError(t, err)
	anHourAgo, err := apikey.NewManager(apikey.ManagerOptions{Store: f.Store, Hasher: apikey.Argon2id{Params: apikey.TestParams},
		Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	require.NoError(t, err)
	quiet, err := anHourAgo.Create(ctx, Owner.Actor, apikey.CreateRequest{
		Environment: apikey.Staging, Type: apikey.Server, Name: "quiet", Scopes: []string{"customers:read"}})
	require.NoError(t, err)
	f.Quiet, err = anHourAgo.Rotate(ctx, Owner.Actor, apikey.RotateRequest{KeyID: quiet.View.ID, Grace: 72 * time.Hour})
	require.NoError(t, err)
	f.Quiet.View.ID, f.Quiet.View.Prefix = quiet.View.ID, quiet.View.Prefix // the key rotated out, not its replacement
	var counts []apikey.UsageCount                                          // on UsageDay
	for i, k := range []apikey.Issued{f.Server, f.Extra} {
		for _, outcome := range []string{"admitted", "rate_limited"} {
			counts = append(counts, apikey.UsageCount{Account: apikey.DefaultAccount, Environment: apikey.Production,
				KeyID: k.View.ID, Hour: UsageDay.Add(time.Duration(10+i) * time.Hour), Outcome: outcome, Count: int64(5 + i)})
		}
	}
	require.NoError(t, f.Store.RecordUsage(ctx, counts))
	// Callers of production's default server key, which the table rotates
	// out: the Manager reports them once it is.
	require.NoError(t, f.Store.RecordCallers(ctx, []apikey.KeyCallers{{Account: apikey.DefaultAccount, KeyID: f.Server.View.ID,
		Callers: []apikey.Caller{{Address: "192.0.2.7", UserAgent: "billing-cron/2.1", Requests: 3, FirstSeen: UsageDay, LastSeen: UsageDay.Add(time.Minute)}},
		Others:  1, OtherRequests: 2}}))
	f.Endpoint, err = f.Manager.CreateEndpoint(ctx, Owner.Actor, apikey.EndpointRequest{URL: "https://hooks.example.com/keystile"})
	require.NoError(t, err)
	dn := f.Endpoint.Endpoint.DeliveryName()
	_, _, err = f.Store.LeaseDelivery(ctx, dn, "fixture", time.Now(), time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.NoError(t, f.Store.AdvanceDelivery(ctx, dn, "fixture", time.Now(), 1,
		&apikey.DeadLetter{Cursor: 1, EventID: "evt_default_1", Attempts: 8, Reason: "retry after 8 attempts (status 503)", At: time.Now()}))
	// A validator that applied nothing: the keys' propagation is pending.
	require.NoError(t, f.Store.ReportInstance(ctx, apikey.InstanceReport{ID: "instance-1", Label: "host:1", Lease: time.Minute}))
	f.API, err = admin.New(admin.Options{
		Manager:       f.Manager,
		Audit:         f.Store,
		Authorize:     func(*http.Request) (admin.Caller, error) { return f.Caller, nil },
		SingleAccount: true,
		CloseAccounts: true,
	})
	require.NoError(t, err)
	return f
}

// Case is a request of the table and what it must answer.
type Case struct {
	Name   string
	Caller admin.Caller
	Method string
	Path   string
	Body   string
	Status int
	// Code is the problem code of a refusal, "" for a success.
	Code string
	// Malformed says that the request is outside the OpenAPI document: a
	// parameter or body its schemas refuse, or a path it does not have.
	// The API refuses every such request (4xx); it may also refuse
	// requests that the document admits, for the state they find or for
	// rules the document does not express.
	Malformed bool
}

// Request returns the case's request. A body is sent as application/json.
func (c Case) Request() *http.Request {
	r := httptest.NewRequest(c.Method, c.Path, strings.NewReader(c.Body))
	if c.Body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// importDigest is the SHA-256 digest, in hex, of a key issued before
// keystile that the table imports.
const importDigest = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

// Cases returns the table, to run in order on f: some requests change what
// later ones find.
func Cases(f *Fixture) []Case {
	confined := func(c admin.Caller) admin.Caller { c.Environment = apikey.Staging; return c }
	oldID := f.Server.View.ID
	extra := "/keys/" + f.Extra.Key.Prefix()
	big := `{"type":"client","name":"` + strings.Repeat("x", 70<<10) + `"}`
	day := "?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z"
	limits := `{"rate":{"requests":100,"window_seconds":60,"burst":20},"quota":{"limit":10000,"refill":10000,"period":"month"},"allowed_ips":["10.0.0.0/8","2001:db8::/32"]}`
	return []Case{
		{Name: "document", Caller: admin.Caller{}, Method: "GET", Path: "/openapi.json", Status: 200},
		{Name: "list as read-only", Caller: ReadOnly, Method: "GET", Path: "/environments/production/keys", Status: 200},
		{Name: "list a page", Caller: ReadOnly, Method: "GET", Path: "/environments/production/keys?limit=1", Status: 200},
		{Name: "list after a cursor no page returned", Caller: ReadOnly, Method: "GET", Path: "/environments/production/keys?after=garbage", Status: 422, Code: "invalid_cursor"},
		{Name: "list with a malformed cursor", Caller: ReadOnly, Method: "GET", Path: "/environments/production/keys?after=!!", Status: 422, Code: "invalid_cursor", Malformed: true},
		{Name: "list a bad environment name", Caller: ReadOnly, Method: "GET", Path: "/environments/Prod/keys", Status: 422, Code: "invalid_environment", Malformed: true},
		{Name: "list an unknown environment", Caller: ReadOnly, Method: "GET", Path: "/environments/qa/keys", Status: 404, Code: "unknown_environment"},
		{Name: "list environments", Caller: ReadOnly, Method: "GET", Path: "/environments", Status: 200},
		{Name: "list environments, a page", Caller: ReadOnly, Method: "GET", Path: "/environments?limit=1", Status: 200},
		{Name: "list environments, limit not a number", Caller: ReadOnly, Method: "GET", Path: "/environments?limit=x", Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "get a key by prefix", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Server.Key.Prefix(), Status: 200},
		{Name: "get a key by full key", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Server.Key.Reveal(), Status: 422, Code: "invalid_key_id", Malformed: true},
		{Name: "create as read-only", Caller: ReadOnly, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","scopes":["*"]}`, Status: 403, Code: "role_not_allowed"},
		{Name: "create scoped", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","name":"worker","owner":"user_42","metadata":{"plan":"pro"},"scopes":["customers:write"],"expires_in":"24h"}`, Status: 201},
		{Name: "create publishable with an expiry", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","name":"web","expires_at":"2099-01-01T00:00:00Z"}`, Status: 201},
		{Name: "create with both expiries", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","scopes":["*"],"expires_in":"1h","expires_at":"2030-01-01T00:00:00Z"}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "create with an expiry past", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","expires_at":"2001-01-01T00:00:00Z"}`, Status: 422, Code: "invalid_expiry"},
		{Name: "create with the zero expiry time", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","expires_at":"0001-01-01T00:00:00Z"}`, Status: 422, Code: "invalid_expiry"},
		{Name: "create expiring in 0s", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","expires_in":"0s"}`, Status: 422, Code: "invalid_expiry"},
		{Name: "create expiring in a negative duration", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","scopes":["*"],"expires_in":"-1h"}`, Status: 422, Code: "invalid_expiry", Malformed: true},
		{Name: "create bad scope", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","scopes":["all"]}`, Status: 422, Code: "invalid_scope", Malformed: true},
		{Name: "create a server key without scopes", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","name":"worker"}`, Status: 422, Code: "scopes_required", Malformed: true},
		{Name: "create a publishable key with scopes", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","scopes":["customers:read"]}`, Status: 422, Code: "invalid_scope", Malformed: true},
		{Name: "create with a long name", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","name":"` + strings.Repeat("x", 201) + `"}`, Status: 422, Code: "invalid_name", Malformed: true},
		{Name: "create with bad metadata", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","metadata":{"Plan":"pro"}}`, Status: 422, Code: "invalid_metadata", Malformed: true},
		{Name: "create bad type", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"root"}`, Status: 422, Code: "invalid_key_type", Malformed: true},
		{Name: "create in unknown environment", Caller: Owner, Method: "POST", Path: "/environments/qa/keys", Body: `{"type":"server","scopes":["*"]}`, Status: 404, Code: "unknown_environment"},
		{Name: "import by digest", Caller: Operator, Method: "POST", Path: "/keys/import", Body: `{"account":"default","environment":"production","type":"server","digest":"` + importDigest + `","scopes":["*"],"owner":"user_42","expires_in":"720h"}`, Status: 201},
		{Name: "import the same digest", Caller: Operator, Method: "POST", Path: "/keys/import", Body: `{"account":"` + OtherAccount + `","environment":"production","type":"server","digest":"` + importDigest + `","scopes":["*"]}`, Status: 409, Code: "conflict"},
		{Name: "import by key", Caller: Operator, Method: "POST", Path: "/keys/import", Body: `{"account":"default","environment":"production","type":"client","key":"pk_live_` + strings.Repeat("Z", 32) + `"}`, Status: 201},
		{Name: "import as an owner, not an operator", Caller: Owner, Method: "POST", Path: "/keys/import", Body: `{"account":"default","environment":"production","type":"client","key":"pk_live_` + strings.Repeat("Y", 32) + `"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "import without an account", Caller: Operator, Method: "POST", Path: "/keys/import", Body: `{"environment":"production","type":"client","key":"pk_live_` + strings.Repeat("Y", 32) + `"}`, Status: 422, Code: "invalid_account", Malformed: true},
		{Name: "import neither digest nor key", Caller: Operator, Method: "POST", Path: "/keys/import", Body: `{"account":"default","environment":"production","type":"client"}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "import a short digest", Caller: Operator, Method: "POST", Path: "/keys/import", Body: `{"account":"default","environment":"production","type":"client","digest":"abcd"}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "unknown field", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","admin":true}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "wrong type of field", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","name":7}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "malformed JSON", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "two objects", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client"}{}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "no body", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "body too large", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: big, Status: 413, Code: "request_too_large", Malformed: true},
		{Name: "bad duration", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/rotate", Body: `{"grace":"soon"}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "rotate without grace", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/rotate", Status: 422, Code: "grace_required", Malformed: true},
		{Name: "rotate with grace missing", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/rotate", Body: `{}`, Status: 422, Code: "grace_required", Malformed: true},
		{Name: "revoke a default key", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/revoke", Status: 409, Code: "rotate_first"},
		{Name: "grace beyond a year", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/rotate", Body: `{"grace":"9000h"}`, Status: 422, Code: "grace_out_of_range"},
		{Name: "change grace of an active key", Caller: Owner, Method: "PUT", Path: "/keys/" + oldID + "/grace", Body: `{"grace":"1h"}`, Status: 409, Code: "not_rotated"},
		{Name: "rotate with grace", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/rotate", Body: `{"grace":"1h"}`, Status: 201},
		{Name: "rotate twice", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/rotate", Body: `{"grace":"1h"}`, Status: 409, Code: "already_rotated"},
		{Name: "change grace", Caller: Owner, Method: "PUT", Path: "/keys/" + oldID + "/grace", Body: `{"grace":"48h"}`, Status: 200},
		{Name: "callers of a key rotated out", Caller: ReadOnly, Method: "GET", Path: "/keys/" + oldID + "/callers", Status: 200},
		{Name: "callers of an active key", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Extra.View.ID + "/callers", Status: 200},
		{Name: "callers of an unknown key", Caller: ReadOnly, Method: "GET", Path: "/keys/nosuchkey000/callers", Status: 404, Code: "not_found"},
		{Name: "end grace if silent, still in use", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/end-grace-if-silent", Body: `{"silent_for":"10m"}`, Status: 409, Code: "still_in_use"},
		{Name: "end grace if silent, too short", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/end-grace-if-silent", Body: `{"silent_for":"1m"}`, Status: 422, Code: "silence_out_of_range"},
		{Name: "end grace if silent, no silence", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/end-grace-if-silent", Body: `{}`, Status: 422, Code: "silence_required", Malformed: true},
		{Name: "end grace if silent, an active key", Caller: Owner, Method: "POST", Path: "/keys/" + f.Extra.View.ID + "/end-grace-if-silent", Body: `{"silent_for":"10m"}`, Status: 409, Code: "not_rotated"},
		{Name: "end grace if silent as read-only", Caller: ReadOnly, Method: "POST", Path: "/keys/" + f.Quiet.View.ID + "/end-grace-if-silent", Body: `{"silent_for":"30m"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "end grace if silent", Caller: Owner, Method: "POST", Path: "/keys/" + f.Quiet.View.ID + "/end-grace-if-silent", Body: `{"silent_for":"30m"}`, Status: 200},
		{Name: "callers of a full key", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Extra.Key.Reveal() + "/callers", Status: 422, Code: "invalid_key_id", Malformed: true},
		{Name: "change grace without grace", Caller: Owner, Method: "PUT", Path: "/keys/" + oldID + "/grace", Body: `{"grace":null}`, Status: 422, Code: "grace_required", Malformed: true},
		{Name: "revoke the rotated key", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/revoke", Status: 200},
		{Name: "revoke twice", Caller: Owner, Method: "POST", Path: "/keys/" + oldID + "/revoke", Status: 409, Code: "already_revoked"},
		{Name: "rotate the default client key", Caller: Owner, Method: "POST", Path: "/environments/production/keys/client/rotate", Body: `{"grace":"0s"}`, Status: 201},
		{Name: "rotate the default key of a bad type", Caller: Owner, Method: "POST", Path: "/environments/production/keys/root/rotate", Body: `{"grace":"0s"}`, Status: 422, Code: "invalid_key_type", Malformed: true},
		{Name: "reveal a server key", Caller: Owner, Method: "POST", Path: "/keys/" + f.Staging[0].View.ID + "/reveal", Status: 409, Code: "not_revealable"},
		{Name: "reveal as read-only", Caller: ReadOnly, Method: "POST", Path: "/keys/" + f.Staging[1].View.ID + "/reveal", Status: 403, Code: "role_not_allowed"},
		{Name: "reveal a publishable key", Caller: Owner, Method: "POST", Path: "/keys/" + f.Staging[1].View.ID + "/reveal", Status: 200},
		{Name: "scopes of a default key", Caller: Owner, Method: "PUT", Path: "/keys/" + f.Staging[0].View.ID + "/scopes", Body: `{"scopes":["customers:read"]}`, Status: 422, Code: "invalid_scope"},
		{Name: "set scopes", Caller: Owner, Method: "PUT", Path: extra + "/scopes", Body: `{"scopes":["customers:write","invoices:read"]}`, Status: 200},
		{Name: "set no scopes", Caller: Owner, Method: "PUT", Path: extra + "/scopes", Body: `{"scopes":[]}`, Status: 422, Code: "scopes_required", Malformed: true},
		{Name: "set owner", Caller: Owner, Method: "PUT", Path: extra + "/owner", Body: `{"owner":"user_42"}`, Status: 200},
		{Name: "set owner to nobody", Caller: Owner, Method: "PUT", Path: extra + "/owner", Body: `{"owner":""}`, Status: 200},
		{Name: "set owner, missing", Caller: Owner, Method: "PUT", Path: extra + "/owner", Body: `{}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "set owner, too long", Caller: Owner, Method: "PUT", Path: extra + "/owner", Body: `{"owner":"` + strings.Repeat("o", 129) + `"}`, Status: 422, Code: "invalid_metadata", Malformed: true},
		{Name: "set owner to a key", Caller: Owner, Method: "PUT", Path: extra + "/owner", Body: `{"owner":"` + f.Client.Key.Reveal() + `"}`, Status: 422, Code: "invalid_metadata"},
		{Name: "set metadata", Caller: Owner, Method: "PUT", Path: extra + "/metadata", Body: `{"metadata":{"plan":"pro","region":"eu"}}`, Status: 200},
		{Name: "set metadata, bad name", Caller: Owner, Method: "PUT", Path: extra + "/metadata", Body: `{"metadata":{"Plan":"pro"}}`, Status: 422, Code: "invalid_metadata", Malformed: true},
		{Name: "remove metadata", Caller: Owner, Method: "PUT", Path: extra + "/metadata", Body: `{"metadata":{}}`, Status: 200},
		{Name: "set metadata as read-only", Caller: ReadOnly, Method: "PUT", Path: extra + "/metadata", Body: `{"metadata":{}}`, Status: 403, Code: "role_not_allowed"},
		{Name: "set limits", Caller: Owner, Method: "PUT", Path: extra + "/limits", Body: limits, Status: 200},
		{Name: "get a key with limits", Caller: ReadOnly, Method: "GET", Path: extra, Status: 200},
		{Name: "set limits as read-only", Caller: ReadOnly, Method: "PUT", Path: extra + "/limits", Body: `{}`, Status: 403, Code: "role_not_allowed"},
		{Name: "set limits, window a fraction", Caller: Owner, Method: "PUT", Path: extra + "/limits", Body: `{"rate":{"requests":10,"window_seconds":1.5}}`, Status: 422, Code: "invalid_limits", Malformed: true},
		{Name: "set limits, refill beyond the quota", Caller: Owner, Method: "PUT", Path: extra + "/limits", Body: `{"quota":{"limit":10,"refill":20,"period":"day"}}`, Status: 422, Code: "invalid_limits"},
		{Name: "set limits, not CIDR", Caller: Owner, Method: "PUT", Path: extra + "/limits", Body: `{"allowed_ips":["10.0.0.0/33"]}`, Status: 422, Code: "invalid_limits"},
		{Name: "set limits, unknown field", Caller: Owner, Method: "PUT", Path: extra + "/limits", Body: `{"rate":{"rps":10}}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "allowlist of a publishable key", Caller: Owner, Method: "PUT", Path: "/keys/" + f.Client.View.ID + "/limits", Body: `{"allowed_ips":["10.0.0.0/8"]}`, Status: 422, Code: "invalid_limits"},
		{Name: "limits of a revoked key", Caller: Owner, Method: "PUT", Path: "/keys/" + oldID + "/limits", Body: `{}`, Status: 409, Code: "already_revoked"},
		{Name: "remove limits", Caller: Owner, Method: "PUT", Path: extra + "/limits", Body: `{}`, Status: 200},
		{Name: "create with limits", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"server","scopes":["*"],"limits":` + limits + `}`, Status: 201},
		{Name: "create with a rate of 0", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","limits":{"rate":{"requests":0,"window_seconds":60}}}`, Status: 422, Code: "invalid_limits", Malformed: true},
		{Name: "key usage", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Server.Key.Prefix() + "/usage" + day, Status: 200},
		{Name: "key propagation", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Server.Key.Prefix() + "/propagation", Status: 200},
		{Name: "propagation of an unknown key", Caller: ReadOnly, Method: "GET", Path: "/keys/nosuchkey000/propagation", Status: 404, Code: "not_found"},
		{Name: "key usage, a page", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Server.View.ID + "/usage" + day + "&limit=1", Status: 200},
		{Name: "environment usage", Caller: ReadOnly, Method: "GET", Path: "/environments/production/usage" + day, Status: 200},
		{Name: "environment usage, none", Caller: ReadOnly, Method: "GET", Path: "/environments/staging/usage" + day, Status: 200},
		{Name: "usage without a range", Caller: ReadOnly, Method: "GET", Path: "/environments/production/usage", Status: 422, Code: "invalid_time_range", Malformed: true},
		{Name: "usage without to", Caller: ReadOnly, Method: "GET", Path: "/keys/" + f.Server.View.ID + "/usage?from=2030-01-01T00:00:00Z", Status: 422, Code: "invalid_time_range", Malformed: true},
		{Name: "usage from not a time", Caller: ReadOnly, Method: "GET", Path: "/environments/production/usage?from=yesterday&to=2030-01-02T00:00:00Z", Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "usage inverted", Caller: ReadOnly, Method: "GET", Path: "/environments/production/usage?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", Status: 422, Code: "invalid_time_range"},
		{Name: "usage beyond 31 days", Caller: ReadOnly, Method: "GET", Path: "/environments/production/usage?from=2030-01-01T00:00:00Z&to=2030-02-01T00:00:01Z", Status: 422, Code: "invalid_time_range"},
		{Name: "usage after a cursor no page returned", Caller: ReadOnly, Method: "GET", Path: "/environments/production/usage" + day + "&after=garbage", Status: 422, Code: "invalid_cursor"},
		{Name: "usage of an unknown environment", Caller: ReadOnly, Method: "GET", Path: "/environments/qa/usage" + day, Status: 404, Code: "unknown_environment"},
		{Name: "usage of an unknown key", Caller: ReadOnly, Method: "GET", Path: "/keys/nosuchkey000/usage" + day, Status: 404, Code: "not_found"},
		{Name: "confined caller, usage of another environment's key", Caller: confined(ReadOnly), Method: "GET", Path: "/keys/" + f.Server.View.ID + "/usage" + day, Status: 404, Code: "not_found"},
		{Name: "unknown key", Caller: Owner, Method: "GET", Path: "/keys/nosuchkey000", Status: 404, Code: "not_found"},
		{Name: "set origins", Caller: Owner, Method: "PUT", Path: "/environments/production/origins", Body: `{"allowed_origins":["https://app.example.com","http://localhost:3000"]}`, Status: 200},
		{Name: "bad origin", Caller: Owner, Method: "PUT", Path: "/environments/production/origins", Body: `{"allowed_origins":["https://app.example.com/path"]}`, Status: 422, Code: "invalid_origin"},
		{Name: "get origins", Caller: ReadOnly, Method: "GET", Path: "/environments/production/origins", Status: 200},
		{Name: "get origins, none", Caller: ReadOnly, Method: "GET", Path: "/environments/staging/origins", Status: 200},
		{Name: "set lifetime", Caller: Owner, Method: "PUT", Path: "/environments/production/lifetime", Body: `{"default_expiry_seconds":2592000,"max_lifetime_seconds":7776000}`, Status: 200},
		{Name: "get settings with a lifetime", Caller: ReadOnly, Method: "GET", Path: "/environments/production/origins", Status: 200},
		{Name: "set lifetime as read-only", Caller: ReadOnly, Method: "PUT", Path: "/environments/production/lifetime", Body: `{}`, Status: 403, Code: "role_not_allowed"},
		{Name: "set lifetime, default beyond max", Caller: Owner, Method: "PUT", Path: "/environments/production/lifetime", Body: `{"default_expiry_seconds":7776001,"max_lifetime_seconds":7776000}`, Status: 422, Code: "invalid_lifetime"},
		{Name: "set lifetime, negative", Caller: Owner, Method: "PUT", Path: "/environments/production/lifetime", Body: `{"max_lifetime_seconds":-1}`, Status: 422, Code: "invalid_lifetime", Malformed: true},
		{Name: "set lifetime, a fraction", Caller: Owner, Method: "PUT", Path: "/environments/production/lifetime", Body: `{"max_lifetime_seconds":1.5}`, Status: 422, Code: "invalid_lifetime", Malformed: true},
		{Name: "set lifetime, beyond ten years", Caller: Owner, Method: "PUT", Path: "/environments/production/lifetime", Body: `{"max_lifetime_seconds":315360001}`, Status: 422, Code: "invalid_lifetime", Malformed: true},
		{Name: "set lifetime, unknown environment", Caller: Owner, Method: "PUT", Path: "/environments/qa/lifetime", Body: `{}`, Status: 404, Code: "unknown_environment"},
		{Name: "set lifetime, confined caller", Caller: confined(Owner), Method: "PUT", Path: "/environments/production/lifetime", Body: `{}`, Status: 404, Code: "not_found"},
		{Name: "create beyond the lifetime", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client","expires_in":"2400h"}`, Status: 422, Code: "beyond_lifetime"},
		{Name: "create with the default expiry", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client"}`, Status: 201},
		{Name: "remove the lifetime", Caller: Owner, Method: "PUT", Path: "/environments/production/lifetime", Body: `{}`, Status: 200},
		{Name: "rename", Caller: Owner, Method: "PUT", Path: extra + "/name", Body: `{"name":"billing worker"}`, Status: 200},
		{Name: "rename to no name", Caller: Owner, Method: "PUT", Path: "/keys/" + f.Client.View.ID + "/name", Body: `{"name":""}`, Status: 200},
		{Name: "rename, missing", Caller: Owner, Method: "PUT", Path: extra + "/name", Body: `{}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "rename, too long", Caller: Owner, Method: "PUT", Path: extra + "/name", Body: `{"name":"` + strings.Repeat("n", 201) + `"}`, Status: 422, Code: "invalid_name", Malformed: true},
		{Name: "rename to a key", Caller: Owner, Method: "PUT", Path: extra + "/name", Body: `{"name":"` + f.Client.Key.Reveal() + `"}`, Status: 422, Code: "invalid_name"},
		{Name: "rename as read-only", Caller: ReadOnly, Method: "PUT", Path: extra + "/name", Body: `{"name":"x"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "rename a revoked key", Caller: Owner, Method: "PUT", Path: "/keys/" + oldID + "/name", Body: `{"name":"x"}`, Status: 409, Code: "already_revoked"},
		{Name: "create an environment", Caller: Owner, Method: "POST", Path: "/environments", Body: `{"environment":"qa"}`, Status: 201},
		{Name: "create an environment again", Caller: Owner, Method: "POST", Path: "/environments", Body: `{"environment":"qa"}`, Status: 409, Code: "already_bootstrapped"},
		{Name: "create an environment, bad name", Caller: Owner, Method: "POST", Path: "/environments", Body: `{"environment":"QA"}`, Status: 422, Code: "invalid_environment", Malformed: true},
		{Name: "create an environment, missing", Caller: Owner, Method: "POST", Path: "/environments", Body: `{}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "create an environment as read-only", Caller: ReadOnly, Method: "POST", Path: "/environments", Body: `{"environment":"dev"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "create an environment, confined caller", Caller: confined(Owner), Method: "POST", Path: "/environments", Body: `{"environment":"dev"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "list webhooks", Caller: ReadOnly, Method: "GET", Path: "/webhooks", Status: 200},
		{Name: "list webhooks, a page", Caller: ReadOnly, Method: "GET", Path: "/webhooks?limit=1", Status: 200},
		{Name: "list webhooks, confined", Caller: confined(Owner), Method: "GET", Path: "/webhooks", Status: 403, Code: "role_not_allowed"},
		{Name: "create a webhook as read-only", Caller: ReadOnly, Method: "POST", Path: "/webhooks", Body: `{"url":"https://hooks.example.com/in"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "create a webhook", Caller: Owner, Method: "POST", Path: "/webhooks", Body: `{"url":"https://hooks.example.com/in","actions":["revoke","key_expiring"],"environment":"production","enabled":true}`, Status: 201},
		{Name: "create a webhook over http", Caller: Owner, Method: "POST", Path: "/webhooks", Body: `{"url":"http://hooks.example.com/in"}`, Status: 422, Code: "invalid_endpoint"},
		{Name: "create a webhook at the metadata address", Caller: Owner, Method: "POST", Path: "/webhooks", Body: `{"url":"https://169.254.169.254/latest"}`, Status: 422, Code: "invalid_endpoint"},
		{Name: "create a webhook for an unknown action", Caller: Owner, Method: "POST", Path: "/webhooks", Body: `{"url":"https://hooks.example.com/in","actions":["explode"]}`, Status: 422, Code: "invalid_endpoint", Malformed: true},
		{Name: "create a webhook without url", Caller: Owner, Method: "POST", Path: "/webhooks", Body: `{"enabled":true}`, Status: 400, Code: "invalid_request"},
		{Name: "get a webhook", Caller: ReadOnly, Method: "GET", Path: "/webhooks/" + f.Endpoint.Endpoint.ID, Status: 200},
		{Name: "get an unknown webhook", Caller: ReadOnly, Method: "GET", Path: "/webhooks/ep_000000000000000000000000", Status: 404, Code: "not_found"},
		{Name: "get a webhook by a bad id", Caller: ReadOnly, Method: "GET", Path: "/webhooks/nope", Status: 422, Code: "invalid_endpoint", Malformed: true},
		{Name: "update a webhook", Caller: Owner, Method: "PUT", Path: "/webhooks/" + f.Endpoint.Endpoint.ID, Body: `{"enabled":false,"environment":"staging"}`, Status: 200},
		{Name: "update a webhook as read-only", Caller: ReadOnly, Method: "PUT", Path: "/webhooks/" + f.Endpoint.Endpoint.ID, Body: `{"enabled":true}`, Status: 403, Code: "role_not_allowed"},
		{Name: "rotate a webhook's secret", Caller: Owner, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/rotate-secret", Body: `{"overlap":"24h"}`, Status: 200},
		{Name: "rotate a webhook's secret, no body", Caller: Owner, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/rotate-secret", Status: 200},
		{Name: "rotate a webhook's secret, overlap too long", Caller: Owner, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/rotate-secret", Body: `{"overlap":"200h"}`, Status: 422, Code: "invalid_endpoint"},
		{Name: "a webhook's dead letters", Caller: ReadOnly, Method: "GET", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/dead-letters", Status: 200},
		{Name: "replay as read-only", Caller: ReadOnly, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/replay", Status: 403, Code: "role_not_allowed"},
		{Name: "replay an event with no dead letter", Caller: Owner, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/replay", Body: `{"event_id":"evt_default_9"}`, Status: 404, Code: "not_found"},
		{Name: "replay a dead letter", Caller: Owner, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/replay", Body: `{"event_id":"evt_default_1"}`, Status: 200},
		{Name: "replay every dead letter", Caller: Owner, Method: "POST", Path: "/webhooks/" + f.Endpoint.Endpoint.ID + "/replay", Status: 200},
		{Name: "delete a webhook as read-only", Caller: ReadOnly, Method: "DELETE", Path: "/webhooks/" + f.Endpoint.Endpoint.ID, Status: 403, Code: "role_not_allowed"},
		{Name: "delete a webhook", Caller: Owner, Method: "DELETE", Path: "/webhooks/" + f.Endpoint.Endpoint.ID, Status: 200},
		{Name: "delete a webhook again", Caller: Owner, Method: "DELETE", Path: "/webhooks/" + f.Endpoint.Endpoint.ID, Status: 404, Code: "not_found"},
		{Name: "audit", Caller: ReadOnly, Method: "GET", Path: "/audit?environment=production&limit=5", Status: 200},
		{Name: "audit before", Caller: ReadOnly, Method: "GET", Path: "/audit?before=3", Status: 200},
		{Name: "audit after", Caller: ReadOnly, Method: "GET", Path: "/audit?after=3&limit=1", Status: 200},
		{Name: "audit bad limit", Caller: ReadOnly, Method: "GET", Path: "/audit?limit=0", Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "audit bad cursor", Caller: ReadOnly, Method: "GET", Path: "/audit?before=x", Status: 422, Code: "invalid_cursor", Malformed: true},
		{Name: "audit two cursors", Caller: ReadOnly, Method: "GET", Path: "/audit?before=3&after=4", Status: 422, Code: "invalid_cursor"},
		{Name: "owner keys as read-only", Caller: ReadOnly, Method: "GET", Path: "/owners/user_42/keys", Status: 200},
		{Name: "owner keys, a page", Caller: ReadOnly, Method: "GET", Path: "/owners/user_42/keys?limit=1", Status: 200},
		{Name: "owner keys, an escaped owner", Caller: ReadOnly, Method: "GET", Path: "/owners/" + url.PathEscape("team/alice smith") + "/keys", Status: 200},
		{Name: "owner keys after a cursor no page returned", Caller: ReadOnly, Method: "GET", Path: "/owners/user_42/keys?after=garbage", Status: 422, Code: "invalid_cursor"},
		{Name: "owner keys of a key-shaped owner", Caller: ReadOnly, Method: "GET", Path: "/owners/" + f.Server.Key.Reveal() + "/keys", Status: 422, Code: "invalid_metadata"},
		{Name: "owner keys, confined", Caller: confined(ReadOnly), Method: "GET", Path: "/owners/user_42/keys", Status: 403, Code: "role_not_allowed"},
		{Name: "owner limits, none", Caller: ReadOnly, Method: "GET", Path: "/owners/user_42/limits", Status: 200},
		{Name: "owner limits, confined", Caller: confined(ReadOnly), Method: "GET", Path: "/owners/user_42/limits", Status: 403, Code: "role_not_allowed"},
		{Name: "set owner limits as read-only", Caller: ReadOnly, Method: "PUT", Path: "/owners/user_42/limits", Body: `{}`, Status: 403, Code: "role_not_allowed"},
		{Name: "set owner limits, confined", Caller: confined(Owner), Method: "PUT", Path: "/owners/user_42/limits", Body: `{}`, Status: 403, Code: "role_not_allowed"},
		{Name: "set owner limits", Caller: Owner, Method: "PUT", Path: "/owners/user_42/limits", Body: `{"rate":{"requests":100,"window_seconds":60},"quota":{"limit":10000,"refill":10000,"period":"month"}}`, Status: 200},
		{Name: "owner limits", Caller: ReadOnly, Method: "GET", Path: "/owners/user_42/limits", Status: 200},
		{Name: "set owner limits, an allowlist", Caller: Owner, Method: "PUT", Path: "/owners/user_42/limits", Body: `{"allowed_ips":["10.0.0.0/8"]}`, Status: 422, Code: "invalid_limits"},
		{Name: "set owner limits, refill beyond the quota", Caller: Owner, Method: "PUT", Path: "/owners/user_42/limits", Body: `{"quota":{"limit":10,"refill":20,"period":"day"}}`, Status: 422, Code: "invalid_limits"},
		{Name: "set owner limits, unknown field", Caller: Owner, Method: "PUT", Path: "/owners/user_42/limits", Body: `{"rate":{"rps":10}}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "set limits of an owner without keys", Caller: Owner, Method: "PUT", Path: "/owners/nobody/limits", Body: `{"quota":{"limit":10}}`, Status: 404, Code: "not_found"},
		{Name: "remove limits of an owner without keys", Caller: Owner, Method: "PUT", Path: "/owners/nobody/limits", Body: `{}`, Status: 200},
		{Name: "key of an owner with limits", Caller: ReadOnly, Method: "GET", Path: extra, Status: 200},
		{Name: "revoke an owner's keys as read-only", Caller: ReadOnly, Method: "POST", Path: "/owners/user_42/revoke", Status: 403, Code: "role_not_allowed"},
		{Name: "revoke an owner's keys, confined", Caller: confined(Owner), Method: "POST", Path: "/owners/user_42/revoke", Status: 403, Code: "role_not_allowed"},
		{Name: "revoke an owner's keys", Caller: Owner, Method: "POST", Path: "/owners/user_42/revoke", Status: 200},
		{Name: "revoke an owner's keys again", Caller: Owner, Method: "POST", Path: "/owners/user_42/revoke", Status: 200},
		{Name: "expiring keys as read-only", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring?within=72h", Status: 200},
		{Name: "expiring keys of an environment, a page", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring?within=8784h&environment=production&limit=1", Status: 200},
		{Name: "expiring keys without a window", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring", Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "expiring keys, a window not a duration", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring?within=3d", Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "expiring keys, an empty window", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring?within=0s", Status: 422, Code: "invalid_time_range"},
		{Name: "expiring keys, a window too long", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring?within=9000h", Status: 422, Code: "invalid_time_range"},
		{Name: "expiring keys of an unknown environment", Caller: ReadOnly, Method: "GET", Path: "/keys/expiring?within=1h&environment=uat", Status: 404, Code: "unknown_environment"},
		{Name: "expiring keys, confined, other environment", Caller: confined(ReadOnly), Method: "GET", Path: "/keys/expiring?within=1h&environment=production", Status: 404, Code: "not_found"},
		{Name: "expiring keys, confined", Caller: confined(ReadOnly), Method: "GET", Path: "/keys/expiring?within=1h", Status: 200},
		{Name: "no such route", Caller: Owner, Method: "DELETE", Path: "/keys", Status: 404, Code: "no_such_route", Malformed: true},
		{Name: "confined caller, other environment", Caller: confined(Owner), Method: "GET", Path: "/environments/production/keys", Status: 404, Code: "not_found"},
		{Name: "confined caller, other key", Caller: confined(Owner), Method: "POST", Path: "/keys/" + f.Client.View.ID + "/reveal", Status: 404, Code: "not_found"},
		{Name: "confined caller, own environment", Caller: confined(ReadOnly), Method: "GET", Path: "/environments/staging/keys", Status: 200},
		{Name: "confined caller, environments", Caller: confined(ReadOnly), Method: "GET", Path: "/environments", Status: 200},
		{Name: "confined audit", Caller: confined(ReadOnly), Method: "GET", Path: "/audit?environment=production", Status: 404, Code: "not_found"},
		{Name: "accounts, not an operator", Caller: Owner, Method: "GET", Path: "/accounts", Status: 403, Code: "role_not_allowed"},
		{Name: "disable a key as read-only", Caller: ReadOnly, Method: "POST", Path: extra + "/disable", Status: 403, Code: "role_not_allowed"},
		{Name: "disable a key", Caller: Owner, Method: "POST", Path: extra + "/disable", Status: 200},
		{Name: "disable a disabled key", Caller: Owner, Method: "POST", Path: extra + "/disable", Status: 200},
		{Name: "enable a key", Caller: Owner, Method: "POST", Path: extra + "/enable", Status: 200},
		{Name: "enable an unknown key", Caller: Owner, Method: "POST", Path: "/keys/server-AAAAAAAAAAAA/enable", Status: 404, Code: "not_found"},
		{Name: "suspend another account, not an operator", Caller: Owner, Method: "POST", Path: "/accounts/" + OtherAccount + "/suspend", Status: 403, Code: "role_not_allowed"},
		{Name: "suspend a bad account id", Caller: Operator, Method: "POST", Path: "/accounts/-x/suspend", Status: 422, Code: "invalid_account", Malformed: true},
		{Name: "suspend another account", Caller: Operator, Method: "POST", Path: "/accounts/" + OtherAccount + "/suspend", Status: 200},
		{Name: "resume another account", Caller: Operator, Method: "POST", Path: "/accounts/" + OtherAccount + "/resume", Status: 200},
		{Name: "accounts", Caller: Operator, Method: "GET", Path: "/accounts", Status: 200},
		{Name: "accounts, a page", Caller: Operator, Method: "GET", Path: "/accounts?limit=1", Status: 200},
		{Name: "close another account, not an operator", Caller: Owner, Method: "POST", Path: "/accounts/" + OtherAccount + "/close", Body: `{"confirm":"` + OtherAccount + `"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "close another account with an unknown field", Caller: Operator, Method: "POST", Path: "/accounts/" + OtherAccount + "/close", Body: `{"now":true}`, Status: 400, Code: "invalid_request", Malformed: true},
		{Name: "close another account unconfirmed", Caller: Operator, Method: "POST", Path: "/accounts/" + OtherAccount + "/close", Status: 422, Code: "confirmation_required", Malformed: true},
		{Name: "close another account, confirming another", Caller: Operator, Method: "POST", Path: "/accounts/" + OtherAccount + "/close", Body: `{"confirm":"default"}`, Status: 422, Code: "confirmation_required"},
		{Name: "close an unknown account", Caller: Operator, Method: "POST", Path: "/accounts/initech/close", Body: `{"confirm":"initech"}`, Status: 404, Code: "not_found"},
		{Name: "close a bad account id", Caller: Operator, Method: "POST", Path: "/accounts/-x/close", Body: `{"confirm":"-x"}`, Status: 422, Code: "invalid_account", Malformed: true},
		{Name: "close another account", Caller: Operator, Method: "POST", Path: "/accounts/" + OtherAccount + "/close", Body: `{"confirm":"` + OtherAccount + `"}`, Status: 200},
		{Name: "close own account, confined", Caller: confined(Owner), Method: "POST", Path: "/account/close", Body: `{"confirm":"default"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "close own account as read-only", Caller: ReadOnly, Method: "POST", Path: "/account/close", Body: `{"confirm":"default"}`, Status: 403, Code: "role_not_allowed"},
		{Name: "close own account unconfirmed", Caller: Owner, Method: "POST", Path: "/account/close", Body: `{}`, Status: 422, Code: "confirmation_required", Malformed: true},
		{Name: "close own account, confirming another", Caller: Owner, Method: "POST", Path: "/account/close", Body: `{"confirm":"` + OtherAccount + `"}`, Status: 422, Code: "confirmation_required"},
		{Name: "close own account", Caller: Owner, Method: "POST", Path: "/account/close", Body: `{"confirm":"default"}`, Status: 200},
		{Name: "create in a closed account", Caller: Owner, Method: "POST", Path: "/environments/production/keys", Body: `{"type":"client"}`, Status: 409, Code: "account_closed"},
		{Name: "create an environment in a closed account", Caller: Owner, Method: "POST", Path: "/environments", Body: `{"environment":"late"}`, Status: 409, Code: "account_closed"},
		{Name: "list a closed account's environments", Caller: ReadOnly, Method: "GET", Path: "/environments", Status: 200},
		{Name: "list a closed account's keys", Caller: ReadOnly, Method: "GET", Path: "/environments/production/keys", Status: 200},
	}
}

// Run sends every case of Cases(f) to f.API in order as its own subtest,
// and checks the status, the content type, the problem code and that every
// response carries Cache-Control: no-store and X-Content-Type-Options:
// nosniff, and that a success holds a
// full key exactly when it is the answer of create, rotate or reveal, and
// two when it creates an environment. It
// then passes a new copy of the request and the response to check, if not
// nil.
func Run(t *testing.T, f *Fixture, check func(t *testing.T, c Case, r *http.Request, res *http.Response)) {
	for _, c := range Cases(f) {
		t.Run(c.Name, func(t *testing.T) {
			f.Caller = c.Caller
			w := httptest.NewRecorder()
			f.API.ServeHTTP(w, c.Request())
			res := w.Result()
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			res.Body = io.NopCloser(strings.NewReader(string(body)))
			require.Equal(t, c.Status, res.StatusCode, "%s", body)
			assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
			assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
			if c.Code != "" {
				assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
				var p problem.Problem
				require.NoError(t, json.Unmarshal(body, &p), "%s", body)
				assert.Equal(t, c.Code, p.Code)
				assert.Equal(t, c.Status, p.Status)
			} else {
				assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
				assert.False(t, c.Malformed, "a request outside the document succeeded")
				var issued struct {
					FullKey string `json:"full_key"`
					Issued  []struct {
						FullKey string `json:"full_key"`
					} `json:"issued"`
				}
				require.NoError(t, json.Unmarshal(body, &issued))
				issues := c.Method == "POST" && (strings.HasSuffix(c.Path, "/rotate") || strings.HasSuffix(c.Path, "/reveal") || strings.HasSuffix(c.Path, "/keys"))
				if issues {
					_, err := apikey.ParseKey(issued.FullKey)
					assert.NoError(t, err, "create, rotate and reveal answer the full key")
				} else {
					assert.Empty(t, issued.FullKey)
				}
				if c.Method == "POST" && c.Path == "/environments" {
					require.Len(t, issued.Issued, 2, "creating an environment answers its two default keys")
					for _, k := range issued.Issued {
						_, err := apikey.ParseKey(k.FullKey)
						assert.NoError(t, err)
					}
				} else {
					assert.Empty(t, issued.Issued)
				}
			}
			if check != nil {
				check(t, c, c.Request(), res)
			}
		})
	}
}
