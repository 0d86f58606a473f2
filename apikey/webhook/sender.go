package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// Endpoint is where a message goes: a URL that a tenant registered and its
// signing secrets (several while one is rotated; each signs the message).
type Endpoint struct {
	URL     string
	Secrets []Secret
}

// Attempt is what one delivery attempt did.
type Attempt struct {
	// Outcome classifies the attempt (see Classify).
	Outcome Outcome
	// Status is the response's status code, 0 if there was no response.
	Status int
	// Body is the start of the response body, at most
	// Options.MaxResponseBody bytes; Truncated reports that more was sent
	// and discarded unread.
	Body      []byte
	Truncated bool
	// Err is why there was no response (a refused address, a timeout, a
	// connection error), or why the body could not be read to its end (the
	// Outcome is then the status's); nil otherwise.
	Err error
	// Start is when the attempt began, Duration how long it took.
	Start    time.Time
	Duration time.Duration
}

// Sender delivers signed messages to endpoints, one attempt per Send, with
// the rules of its Options. It is safe for concurrent use; attempts share
// the client's idle connections. Retrying is the caller's: see RetryPolicy.
type Sender struct {
	o      Options
	client *http.Client
}

// NewSender returns a Sender for o, or an error naming the invalid option.
func NewSender(o Options) (*Sender, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Sender{o: o, client: newClient(o)}, nil
}

// Timeout returns the longest time one attempt takes (Options.Timeout, or
// DefaultTimeout), so that a delivery loop can hold a lease longer than
// any attempt.
func (s *Sender) Timeout() time.Duration { return s.o.Timeout }

// CheckEndpoint validates rawURL as Policy.ParseEndpoint does and, if its
// host is a DNS name, resolves it and refuses it when any address is one
// the Policy does not admit: an early, clear answer for a tenant who
// registers an endpoint. It protects nothing by itself, since the name may
// resolve elsewhere later (DNS rebinding): every Send checks the address
// it dials. Errors wrap ErrInvalidEndpoint (and ErrForbiddenAddress for a
// forbidden address) and name url.host.
func (s *Sender) CheckEndpoint(ctx context.Context, rawURL string) (*url.URL, error) {
	u, err := s.o.Policy.ParseEndpoint(rawURL)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(u.Hostname()); err == nil {
		return u, nil // checked by ParseEndpoint
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	addrs, err := s.o.Resolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("%w: url.host %s does not resolve", ErrInvalidEndpoint, u.Hostname())
	}
	for _, a := range addrs {
		if why := s.o.Policy.forbidden(a); why != "" {
			return nil, forbiddenHost(u.Hostname() + " resolves to " + why)
		}
	}
	return u, nil
}

// Send makes one attempt to deliver m to e: a POST of m.Body as
// application/json, signed (Sign) with every secret of e, stamped with
// m.Timestamp or, if zero, the Sender's clock. The attempt is bounded by
// Options.Timeout and by ctx; it follows no redirect, and reads at most
// Options.MaxResponseBody bytes of the response.
//
// Send returns an error, and makes no request, only for what no retry can
// fix: an endpoint URL the Policy refuses (ErrInvalidEndpoint,
// ErrForbiddenAddress), or a message that cannot be signed
// (ErrInvalidMessage). Everything that happens on the network is in the
// Attempt, including an address refused when dialed.
func (s *Sender) Send(ctx context.Context, e Endpoint, m Message) (Attempt, error) {
	u, err := s.o.Policy.ParseEndpoint(e.URL)
	if err != nil {
		return Attempt{}, err
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = s.o.Now()
	}
	header := make(http.Header, 6)
	if err := Sign(header, m, e.Secrets...); err != nil {
		return Attempt{}, err
	}
	header.Set("Content-Type", "application/json")
	header.Set("User-Agent", s.o.UserAgent)

	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(m.Body))
	if err != nil {
		return Attempt{}, fmt.Errorf("%w: url: %w", ErrInvalidEndpoint, err)
	}
	req.Header = header

	a := Attempt{Start: time.Now()}
	resp, err := s.client.Do(req)
	if err != nil {
		a.Err, a.Duration = err, time.Since(a.Start)
		a.Outcome = Classify(0, err)
		return a, nil
	}
	defer resp.Body.Close() // unread bytes are dropped with the connection
	a.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.o.MaxResponseBody)+1))
	if len(body) > s.o.MaxResponseBody {
		body, a.Truncated = body[:s.o.MaxResponseBody], true
	} else if err != nil {
		a.Err = err
	}
	a.Body, a.Duration = body, time.Since(a.Start)
	a.Outcome = Classify(resp.StatusCode, nil) // the status is the receiver's answer, whatever its body
	return a, nil
}

// Outcome classifies a delivery attempt.
type Outcome uint8

// Outcomes of an attempt. The zero Outcome is none.
const (
	// Delivered: a 2xx response. The event is delivered.
	Delivered Outcome = iota + 1
	// Retry: a transient failure worth retrying: a 5xx, 408 Request
	// Timeout or 429 Too Many Requests response, a timeout, a connection
	// or name resolution error.
	Retry
	// Failed: the endpoint refused the message (a 3xx, which is not
	// followed, or a 4xx other than 408, 410 and 429), or its address was
	// refused when dialed. Retried as RetryPolicy says.
	Failed
	// Gone: a 410 Gone response: the endpoint asks to receive no more
	// messages. The delivery loop disables it.
	Gone
)

// String returns "delivered", "retry", "failed", "gone", or "none".
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Failed:
		return "failed"
	case Gone:
		return "gone"
	}
	return "none"
}

// Classify returns the Outcome of an attempt that got status (0 if none)
// or failed with err.
func Classify(status int, err error) Outcome {
	if status == 0 {
		if errors.Is(err, ErrForbiddenAddress) {
			return Failed
		}
		return Retry
	}
	switch {
	case status >= 200 && status <= 299:
		return Delivered
	case status == http.StatusGone:
		return Gone
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return Retry
	}
	return Failed // 1xx after the final response cannot occur; 3xx, 4xx
}
