package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

var usageDay = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// recordUsage stores counts of production's default keys on usageDay: the
// server key's at 10:00 and 11:00, the publishable key's at 10:00, each
// admitted and rate_limited; and the staging server key's at 10:00.
func recordUsage(t *testing.T, f *fixture) {
	t.Helper()
	var counts []apikey.UsageCount
	add := func(k apikey.Issued, hour int) {
		for _, outcome := range []string{"admitted", "rate_limited"} {
			counts = append(counts, apikey.UsageCount{Account: apikey.DefaultAccount, Environment: k.View.Environment,
				KeyID: k.View.ID, Hour: usageDay.Add(time.Duration(hour) * time.Hour), Outcome: outcome, Count: int64(hour)})
		}
	}
	add(f.server, 10)
	add(f.server, 11)
	add(f.client, 10)
	add(f.staging[0], 10)
	require.NoError(t, f.store.RecordUsage(context.Background(), counts))
}

// usageQuery is ?from=&to= of a range on usageDay, in hours.
func usageQuery(from, to time.Duration) string {
	return "?from=" + url.QueryEscape(usageDay.Add(from).Format(time.RFC3339)) + "&to=" + url.QueryEscape(usageDay.Add(to).Format(time.RFC3339))
}

// counts reads the counts of a usage page as key id, hour and outcome.
func counts(t *testing.T, body map[string]any) []string {
	t.Helper()
	list, ok := body["counts"].([]any)
	require.True(t, ok, "%v", body)
	var out []string
	for _, c := range list {
		c := c.(map[string]any)
		hour, err := time.Parse(time.RFC3339, c["hour"].(string))
		require.NoError(t, err)
		out = append(out, c["key_id"].(string)+" "+hour.Format("15")+" "+c["outcome"].(string))
	}
	return out
}

// TestUsage: GET /keys/{id}/usage and GET /environments/{env}/usage answer
// the counts of the key or the environment's keys over [from, to), from
// rounded down and to up to their hours, ordered by hour, key id and
// outcome, and paged with ?limit= and ?after=.
func TestUsage(t *testing.T) {
	f := newFixture(t)
	recordUsage(t, f)
	srv, cli := f.server.View.ID, f.client.View.ID
	first, second := srv, cli
	if cli < srv {
		first, second = cli, srv
	}
	f.caller = readOnly
	tests := []struct {
		name, path string
		want       []string
	}{
		{"a key, the day", "/keys/" + f.server.Key.Prefix() + "/usage" + usageQuery(0, 24*time.Hour),
			[]string{srv + " 10 admitted", srv + " 10 rate_limited", srv + " 11 admitted", srv + " 11 rate_limited"}},
		{"a key, an hour", "/keys/" + srv + "/usage" + usageQuery(11*time.Hour, 12*time.Hour),
			[]string{srv + " 11 admitted", srv + " 11 rate_limited"}},
		{"a key, within an hour", "/keys/" + srv + "/usage" + usageQuery(11*time.Hour+10*time.Minute, 11*time.Hour+20*time.Minute),
			[]string{srv + " 11 admitted", srv + " 11 rate_limited"}},
		{"a key, to excluded", "/keys/" + srv + "/usage" + usageQuery(0, 11*time.Hour),
			[]string{srv + " 10 admitted", srv + " 10 rate_limited"}},
		{"a key, none", "/keys/" + srv + "/usage" + usageQuery(24*time.Hour, 48*time.Hour), nil},
		{"an environment", "/environments/production/usage" + usageQuery(0, 24*time.Hour),
			[]string{first + " 10 admitted", first + " 10 rate_limited", second + " 10 admitted", second + " 10 rate_limited",
				srv + " 11 admitted", srv + " 11 rate_limited"}},
		{"another environment", "/environments/staging/usage" + usageQuery(0, 24*time.Hour),
			[]string{f.staging[0].View.ID + " 10 admitted", f.staging[0].View.ID + " 10 rate_limited"}},
		{"31 days", "/environments/staging/usage" + usageQuery(-30*24*time.Hour, 24*time.Hour),
			[]string{f.staging[0].View.ID + " 10 admitted", f.staging[0].View.ID + " 10 rate_limited"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := f.do(t, "GET", tt.path, "")
			require.Equal(t, http.StatusOK, status, "%v", body)
			assert.Equal(t, tt.want, counts(t, body))
			assert.NotContains(t, body, "next")
		})
	}

	t.Run("pages", func(t *testing.T) {
		path := "/environments/production/usage" + usageQuery(0, 24*time.Hour) + "&limit=4"
		status, body, _ := f.do(t, "GET", path, "")
		require.Equal(t, http.StatusOK, status)
		got := counts(t, body)
		require.Len(t, got, 4)
		next, _ := body["next"].(string)
		require.NotEmpty(t, next)
		status, body, _ = f.do(t, "GET", path+"&after="+url.QueryEscape(next), "")
		require.Equal(t, http.StatusOK, status, "%v", body)
		got = append(got, counts(t, body)...)
		assert.NotContains(t, body, "next", "the last page")
		assert.Equal(t, tests[5].want, got, "the pages hold every count once, in order")
	})
}

// TestUsageRefused: a range that is missing, not RFC 3339, inverted or
// longer than admin.MaxUsageRange is refused; so are keys and environments
// the caller cannot see, and a key-authenticated caller reading any usage
// but its own key's. A store that keeps no usage is 501.
func TestUsageRefused(t *testing.T) {
	f := newFixture(t)
	recordUsage(t, f)
	day := usageQuery(0, 24*time.Hour)
	srv := "/keys/" + f.server.View.ID + "/usage"
	key := admin.Caller{ // as admin.KeyScopes makes it of production's server key
		Actor:       apikey.Actor{ID: f.server.Key.Prefix(), Role: apikey.ReadOnly, Scopes: []string{apikey.AllScopes}, KeyID: f.server.View.ID},
		Environment: apikey.Production,
	}
	for _, tt := range []struct {
		name   string
		caller admin.Caller
		path   string
		status int
		code   string
		detail string
	}{
		{"no range", readOnly, srv, 422, "invalid_time_range", `apikey: invalid time range: from is required: a time such as "2030-01-01T00:00:00Z" (RFC 3339)`},
		{"no to", readOnly, srv + "?from=2030-01-01T00:00:00Z", 422, "invalid_time_range", `apikey: invalid time range: to is required: a time such as "2030-01-01T00:00:00Z" (RFC 3339)`},
		{"from not RFC 3339", readOnly, srv + "?from=2030-01-01&to=2030-01-02T00:00:00Z", 400, "invalid_request", `from: want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`},
		{"to not a time", readOnly, srv + "?from=2030-01-01T00:00:00Z&to=tomorrow", 400, "invalid_request", `to: want a time such as "2030-01-01T00:00:00Z" (RFC 3339)`},
		{"from equal to to", readOnly, srv + usageQuery(time.Hour, time.Hour), 422, "invalid_time_range", "apikey: invalid time range: from must be before to"},
		{"inverted", readOnly, srv + usageQuery(2*time.Hour, time.Hour), 422, "invalid_time_range", "apikey: invalid time range: from must be before to"},
		{"beyond 31 days", readOnly, srv + usageQuery(0, admin.MaxUsageRange+time.Second), 422, "invalid_time_range", "apikey: invalid time range: from and to may be at most 31 days apart"},
		{"a bad limit", readOnly, srv + day + "&limit=1001", 400, "invalid_request", ""},
		{"a cursor no page returned", readOnly, srv + day + "&after=AAAA", 422, "invalid_cursor", ""},
		{"an unknown key", readOnly, "/keys/nosuchkey000/usage" + day, 404, "not_found", ""},
		{"a full key", readOnly, "/keys/" + f.server.Key.Reveal() + "/usage" + day, 422, "invalid_key_id", ""},
		{"an unknown environment", readOnly, "/environments/qa/usage" + day, 404, "unknown_environment", ""},
		{"confined, another environment", admin.Caller{Actor: readOnly.Actor, Environment: apikey.Staging}, "/environments/production/usage" + day, 404, "not_found", ""},
		{"confined, another environment's key", admin.Caller{Actor: readOnly.Actor, Environment: apikey.Staging}, srv + day, 404, "not_found", ""},
		{"a key, its own", key, srv + day, 200, "", ""},
		{"a key, another key", key, "/keys/" + f.client.View.ID + "/usage" + day, 403, "role_not_allowed", ""},
		{"a key, its environment", key, "/environments/production/usage" + day, 403, "role_not_allowed", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.caller = tt.caller
			status, body, _ := f.do(t, "GET", tt.path, "")
			require.Equal(t, tt.status, status, "%v", body)
			if tt.code != "" {
				assert.Equal(t, tt.code, body["code"])
			}
			if tt.detail != "" {
				assert.Equal(t, tt.detail, body["detail"])
			}
		})
	}

	t.Run("a store that keeps no usage", func(t *testing.T) {
		m, err := apikey.NewManager(apikey.ManagerOptions{Store: noUsage{f.store}})
		require.NoError(t, err)
		api, err := admin.New(admin.Options{Manager: m, SingleAccount: true,
			Authorize: func(*http.Request) (admin.Caller, error) { return readOnly, nil }})
		require.NoError(t, err)
		g := &fixture{api: api}
		status, body, _ := g.do(t, "GET", srv+day, "")
		require.Equal(t, http.StatusNotImplemented, status, "%v", body)
		assert.Equal(t, "usage_unavailable", body["code"])
	})
}

// noUsage is a store with the methods of apikey.Store alone.
type noUsage struct{ apikey.Store }
