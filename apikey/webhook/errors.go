package webhook

import "errors"

// Errors returned by this package. Each is a sentinel: test for it with
// errors.Is, because most are wrapped with detail. No error text ever holds
// a signing secret.
var (
	// ErrInvalidSecret means a signing secret is not in the form
	// "whsec_<base64>" of MinSecretSize to MaxSecretSize bytes.
	ErrInvalidSecret = errors.New("webhook: invalid signing secret")
	// ErrInvalidMessage means a message cannot be signed: its id is empty,
	// too long or holds a character outside [0-9A-Za-z_:-], or no secret
	// was given.
	ErrInvalidMessage = errors.New("webhook: invalid message")

	// ErrMissingHeader means a received request lacks webhook-id,
	// webhook-timestamp or webhook-signature.
	ErrMissingHeader = errors.New("webhook: missing signature header")
	// ErrInvalidHeader means a received signature header is malformed: a
	// timestamp that is not Unix seconds, or too many signatures.
	ErrInvalidHeader = errors.New("webhook: invalid signature header")
	// ErrNoMatchingSignature means no signature of a received request
	// matches its body under any of the receiver's secrets.
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
	// ErrTimestampOutOfRange means a received request was signed further in
	// the past or the future than the receiver's tolerance: a replay, or a
	// clock out of step.
	ErrTimestampOutOfRange = errors.New("webhook: timestamp out of tolerance")

	// ErrInvalidEndpoint means an endpoint URL is refused at registration
	// or before sending: the message names the part (url, url.scheme,
	// url.host, url.port, url.userinfo).
	ErrInvalidEndpoint = errors.New("webhook: invalid endpoint")
	// ErrForbiddenAddress means an endpoint's address, as dialed, is one
	// that outbound requests may not reach (loopback, private, link-local,
	// ...) and the Policy does not allow it.
	ErrForbiddenAddress = errors.New("webhook: forbidden address")
)
