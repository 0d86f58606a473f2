package admin

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
)

// importRequest is the body of POST /keys/import: the account a key
// belongs to, the key, which the service issued before it adopted
// keystile, by its SHA-256 digest or itself, and the fields of a create.
type importRequest struct {
	Account     string         `json:"account"`
	Environment string         `json:"environment"`
	Type        apikey.KeyType `json:"type"`
	// Digest is the key's SHA-256 digest, 64 hexadecimal characters.
	Digest string `json:"digest"`
	// Key is the key itself, hashed and never stored or echoed.
	Key       string            `json:"key"`
	Name      string            `json:"name"`
	Owner     string            `json:"owner"`
	Metadata  map[string]string `json:"metadata"`
	Scopes    []string          `json:"scopes"`
	ExpiresIn *duration         `json:"expires_in"`
	ExpiresAt *time.Time        `json:"expires_at"`
	Limits    *limitsBody       `json:"limits"`
}

// importKey serves POST /keys/import, for an operator only (Caller.Operator;
// apikey.Manager.Import): it answers 201 with the imported key's view (the
// caller has the key; nothing is shown again).
func (a *API) importKey(r *http.Request, c Caller) (int, any, error) {
	actor, err := c.operator()
	if err != nil {
		return 0, nil, err
	}
	var req importRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if c.Environment != "" && req.Environment != c.Environment {
		return 0, nil, notFound("no such environment")
	}
	var digest [32]byte
	if req.Digest != "" {
		if len(req.Digest) != hex.EncodedLen(len(digest)) {
			return 0, nil, invalid("digest: want the key's SHA-256 digest, 64 hexadecimal characters")
		}
		if _, err := hex.Decode(digest[:], []byte(req.Digest)); err != nil {
			return 0, nil, invalid("digest: want the key's SHA-256 digest, 64 hexadecimal characters")
		}
	}
	expires, err := createRequest{ExpiresIn: req.ExpiresIn, ExpiresAt: req.ExpiresAt}.expiry(a.opts.Manager.Now())
	if err != nil {
		return 0, nil, err
	}
	var limits apikey.Limits
	if req.Limits != nil {
		if limits, err = req.Limits.limits(); err != nil {
			return 0, nil, err
		}
	}
	view, err := a.opts.Manager.Import(r.Context(), actor, apikey.ImportRequest{Account: req.Account,
		Environment: req.Environment, Type: req.Type, Digest: digest, Key: apikey.NewOpaque(req.Key),
		Name: req.Name, Owner: req.Owner, Metadata: req.Metadata, Scopes: req.Scopes, ExpiresAt: expires, Limits: limits,
	})
	return http.StatusCreated, view, err
}
