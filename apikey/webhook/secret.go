package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/keystile/keystile/apikey"
)

// SecretPrefix starts the text form of every Secret, as in the Standard
// Webhooks specification: "whsec_" then the key in standard base64.
const SecretPrefix = "whsec_"

// Bounds of a signing key, in bytes: the Standard Webhooks specification
// recommends 24 to 64. GenerateSecret makes SecretSize bytes.
const (
	MinSecretSize = 24
	MaxSecretSize = 64
	SecretSize    = 32
)

// redacted is what every way of printing a non-empty Secret shows.
const redacted = SecretPrefix + "[redacted]"

// Secret is an endpoint's signing key. Every way of printing it (String,
// fmt verbs, slog, JSON, also inside another struct) shows
// "whsec_[redacted]", or nothing for the zero Secret; only Reveal returns
// the key, in its "whsec_<base64>" form, to show the tenant once or to store
// it. The zero Secret is empty and signs nothing. Secrets are values and
// safe for concurrent use.
type Secret struct {
	key apikey.Opaque // the raw key bytes; Opaque keeps them out of reflection
}

// GenerateSecret returns a Secret of SecretSize bytes from crypto/rand.
func GenerateSecret() Secret {
	b := make([]byte, SecretSize)
	rand.Read(b) // never returns an error (crypto/rand, Go 1.24+)
	return Secret{key: apikey.OpaqueBytes(b)}
}

// ParseSecret reads a secret in the form "whsec_<base64>" (standard base64
// with padding, MinSecretSize to MaxSecretSize bytes once decoded). Errors
// wrap ErrInvalidSecret and never hold s.
func ParseSecret(s string) (Secret, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return Secret{}, fmt.Errorf("%w: does not start with %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(enc) > base64.StdEncoding.EncodedLen(MaxSecretSize) {
		return Secret{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidSecret, MaxSecretSize)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return Secret{}, fmt.Errorf("%w: not standard base64 after %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(b) < MinSecretSize || len(b) > MaxSecretSize {
		return Secret{}, fmt.Errorf("%w: %d bytes, must be %d to %d", ErrInvalidSecret, len(b), MinSecretSize, MaxSecretSize)
	}
	return Secret{key: apikey.OpaqueBytes(b)}, nil
}

// Reveal returns the secret as "whsec_<base64>" ("" for the zero Secret).
// Call it only to show the secret to its tenant once or to store it, never
// to print or log it.
func (s Secret) Reveal() string {
	if s.key.IsZero() {
		return ""
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(s.key.Bytes())
}

// IsZero reports whether s is the zero Secret.
func (s Secret) IsZero() bool { return s.key.IsZero() }

// Equal reports whether s and x hold the same key, in time that depends
// only on their lengths.
func (s Secret) Equal(x Secret) bool { return s.key.Equal(x.key) }

// String returns "whsec_[redacted]", or "" for the zero Secret.
func (s Secret) String() string {
	if s.key.IsZero() {
		return ""
	}
	return redacted
}

// Format prints String for every verb, so that no fmt verb prints the key.
func (s Secret) Format(f fmt.State, verb rune) {
	out := s.String()
	if verb == 'q' {
		out = strconv.Quote(out)
	}
	fmt.Fprint(f, out)
}

// LogValue makes slog log String.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes String as a JSON string: a Secret cannot be written
// as JSON by accident. Store Reveal in a field of its own.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// sign returns the version-1 signature of a message: "v1," then the
// standard base64 of HMAC-SHA256(key, id + "." + unix seconds + "." + body).
func (s Secret) sign(id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(s.key.Reveal()))
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sign returns the webhook-signature header value for a message with id,
// timestamp (whole Unix seconds) and body signed with s: "v1,<base64>".
// The zero Secret signs nothing and returns "".
func (s Secret) Sign(id string, timestamp time.Time, body []byte) string {
	if s.IsZero() {
		return ""
	}
	return s.sign(id, timestamp.Unix(), body)
}
