package webhook

import (
	"crypto/hmac"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const signatureVersion = "v1"

// MaxIDLength bounds a message id, in bytes.
const MaxIDLength = 256

// maxSignatures bounds how many signatures a receiver reads from one
// webhook-signature header: a sender signs with at most a few secrets
// while one is rotated.
const maxSignatures = 8

// DefaultTolerance is how far a received timestamp may be from the
// receiver's clock when Verifier.Tolerance is zero, as in the Standard
// Webhooks specification.
const DefaultTolerance = 5 * time.Minute

// Message is one webhook delivery's content: the event id (the same for
// every attempt, so that a receiver can drop duplicates), the time it is
// signed at and the body. Sign and Sender use Timestamp to whole seconds.
type Message struct {
	ID        string
	Timestamp time.Time
	Body      []byte
}

// ValidateID reports whether id may be a message id: 1 to MaxIDLength
// characters of [0-9A-Za-z_:-]. The signed content is "id.timestamp.body",
// so an id may not hold a '.': two messages could otherwise sign the same
// bytes. Errors wrap ErrInvalidMessage.
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return fmt.Errorf("%w: id must be 1 to %d characters", ErrInvalidMessage, MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-' || c == ':') {
			return fmt.Errorf("%w: id holds %q at byte %d, allowed are [0-9A-Za-z_:-]", ErrInvalidMessage, c, i)
		}
	}
	return nil
}

// Sign sets the three Standard Webhooks headers of m on h: webhook-id,
// webhook-timestamp (Unix seconds) and webhook-signature, with one "v1,"
// signature per secret, separated by spaces (several while a secret is
// rotated). It fails, setting nothing, when m.ID is not valid (ValidateID)
// or no secret is given; errors wrap ErrInvalidMessage.
func Sign(h http.Header, m Message, secrets ...Secret) error {
	if err := ValidateID(m.ID); err != nil {
		return err
	}
	ts := m.Timestamp.Unix()
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if !s.IsZero() {
			sigs = append(sigs, s.sign(m.ID, ts, m.Body))
		}
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no signing secret", ErrInvalidMessage)
	}
	h.Set(HeaderID, m.ID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return nil
}

// Verifier checks the signature of received webhooks: a receiver's side of
// Sign. Its zero value verifies nothing (no secret); set Secrets. A Verifier
// is safe for concurrent use once built.
type Verifier struct {
	// Secrets are the endpoint's signing secrets: a signature made with any
	// of them is accepted (several while a secret is rotated).
	Secrets []Secret
	// Tolerance is how far the webhook-timestamp may be from Now, in the
	// past or the future; zero means DefaultTolerance.
	Tolerance time.Duration
	// Now is the receiver's clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks the headers and body of a received webhook and returns its
// Message. Errors wrap ErrMissingHeader, ErrInvalidHeader,
// ErrTimestampOutOfRange or ErrNoMatchingSignature. Signatures of versions
// other than v1 are ignored. Comparisons are constant-time.
func (v *Verifier) Verify(h http.Header, body []byte) (Message, error) {
	id, tsText, sigText := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	switch {
	case id == "":
		return Message{}, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderID)
	case tsText == "":
		return Message{}, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	case sigText == "":
		return Message{}, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || len(tsText) > 12 {
		return Message{}, fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidHeader, HeaderTimestamp)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tolerance := v.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	at := time.Unix(ts, 0)
	if d := now().Sub(at); d > tolerance || d < -tolerance {
		return Message{}, fmt.Errorf("%w: %s is %s from now, tolerance %s", ErrTimestampOutOfRange, HeaderTimestamp, d.Round(time.Second), tolerance)
	}
	sigs := strings.Fields(sigText)
	if len(sigs) > maxSignatures {
		return Message{}, fmt.Errorf("%w: %s holds more than %d signatures", ErrInvalidHeader, HeaderSignature, maxSignatures)
	}
	for _, s := range v.Secrets {
		if s.IsZero() {
			continue
		}
		want := []byte(s.sign(id, ts, body))
		for _, sig := range sigs {
			if hmac.Equal([]byte(sig), want) {
				return Message{ID: id, Timestamp: at, Body: body}, nil
			}
		}
	}
	return Message{}, ErrNoMatchingSignature
}
