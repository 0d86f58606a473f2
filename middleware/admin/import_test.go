package admin_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/admin"
)

func TestImportKey(t *testing.T) {
	const old = "sk_live_4eC39HqLyjWDarjtT1zdp7dc8Xk2PqRs"
	sum := sha256.Sum256([]byte(old))
	digest := hex.EncodeToString(sum[:])
	f := newFixture(t) // one for every case, in order: the second imports the first's key again
	f.caller = operator
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
		detail string
	}{
		{"by digest", `{"account":"default","environment":"production","type":"server","digest":"` + digest + `","scopes":["*"],"owner":"user_42","expires_in":"720h"}`, http.StatusCreated, "", ""},
		{"again, by key", `{"account":"default","environment":"production","type":"server","key":"` + old + `","scopes":["*"]}`, http.StatusConflict, "conflict", "stored already"},
		{"by key", `{"account":"default","environment":"staging","type":"client","key":"pk_live_` + strings.Repeat("Z", 32) + `"}`, http.StatusCreated, "", ""},
		{"short digest", `{"account":"default","environment":"production","type":"server","digest":"abcd","scopes":["*"]}`, http.StatusBadRequest, "invalid_request", "digest: want"},
		{"digest not hex", `{"account":"default","environment":"production","type":"server","digest":"` + strings.Repeat("z", 64) + `","scopes":["*"]}`, http.StatusBadRequest, "invalid_request", "digest: want"},
		{"neither", `{"account":"default","environment":"production","type":"server","scopes":["*"]}`, http.StatusBadRequest, "invalid_request", "digest or key is required"},
		{"both", `{"account":"default","environment":"production","type":"server","key":"x_` + strings.Repeat("a", 20) + `","digest":"` + digest + `","scopes":["*"]}`, http.StatusBadRequest, "invalid_request", "not both"},
		{"no scopes", `{"account":"default","environment":"production","type":"server","digest":"` + strings.Repeat("0", 63) + `1"}`, http.StatusUnprocessableEntity, "scopes_required", ""},
		{"no account", `{"environment":"production","type":"server","digest":"` + strings.Repeat("0", 63) + `1","scopes":["*"]}`, http.StatusUnprocessableEntity, "invalid_account", "account is required"},
		{"any account", `{"account":"*","environment":"production","type":"server","digest":"` + strings.Repeat("0", 63) + `1","scopes":["*"]}`, http.StatusUnprocessableEntity, "invalid_account", "account is required"},
		{"unknown account", `{"account":"initech","environment":"production","type":"server","digest":"` + strings.Repeat("0", 63) + `1","scopes":["*"]}`, http.StatusNotFound, "unknown_environment", ""},
		{"unknown environment", `{"account":"default","environment":"qa","type":"server","digest":"` + strings.Repeat("0", 63) + `1","scopes":["*"]}`, http.StatusNotFound, "unknown_environment", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out, _ := f.do(t, "POST", "/keys/import", tc.body)
			require.Equal(t, tc.status, status, "%v", out)
			if tc.code != "" {
				assert.Equal(t, tc.code, out["code"])
				assert.Contains(t, out["detail"], tc.detail)
				return
			}
			assert.Equal(t, true, out["imported"])
			assert.Equal(t, false, out["default"])
			assert.NotContains(t, out, "full_key")
		})
	}
}

// TestImportKeyForbidden: importing is the service's act (Caller.Operator):
// no account member, an owner or a full-access key of the account
// included, may import, even into its own account, so that no tenant
// claims another's legacy key or learns that it exists.
func TestImportKeyForbidden(t *testing.T) {
	f := newFixture(t)
	for name, caller := range map[string]admin.Caller{
		"read-only":          readOnly,
		"owner":              owner,
		"owner of globex":    {Actor: apikey.Actor{ID: "mallory", Role: apikey.Owner}, Account: "globex"},
		"full-access key":    {Actor: apikey.Actor{ID: "k", Role: apikey.Owner, Scopes: []string{"*"}, KeyID: f.server.View.ID}},
		"read-only operator": {Actor: apikey.Actor{ID: "ops", Role: apikey.ReadOnly}, Operator: true},
	} {
		t.Run(name, func(t *testing.T) {
			f.caller = caller
			status, out, _ := f.do(t, "POST", "/keys/import", `{"account":"default","environment":"production","type":"server","digest":"`+strings.Repeat("0", 63)+`1","scopes":["*"]}`)
			assert.Equal(t, http.StatusForbidden, status)
			assert.Equal(t, "role_not_allowed", out["code"])
		})
	}
	_, err := f.store.Key(t.Context(), apikey.ImportedID([32]byte{31: 1}))
	assert.ErrorIs(t, err, apikey.ErrNotFound)
}
