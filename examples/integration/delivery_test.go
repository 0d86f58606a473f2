package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/apikey/events"
	"github.com/keystile/keystile/apikey/webhook"
	"github.com/keystile/keystile/storage/sqlstore"
)

// TestDeliveryThreeInstances delivers 200 events from three Deliverers,
// each on its own pool of one database (three processes), to a local
// receiver that fails 20 % of attempts, on both engines, while a second
// endpoint hangs: every event reaches the healthy endpoint exactly once,
// in stream order, each request verifies with the Standard Webhooks
// reference library, nothing is dead-lettered, and all of it happens while
// the hanging endpoint's first attempt is still waiting for an answer (the
// Sender's timeout and the lease outlast the test), so that the hanging
// endpoint held nothing up.
func TestDeliveryThreeInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		r := runDelivery(t, b, dsn, deliveryRun{total: 200, hanging: true, timeout: 5 * time.Minute,
			lease: 10 * time.Minute, batch: 20})
		r.assert(t)
		assert.EqualValues(t, 1, r.hangingAttempts, "the hanging endpoint's first attempt, still waiting")
		assert.EqualValues(t, 1, r.hangingInFlight, "still waiting when the healthy endpoint had every event")
		assert.Zero(t, r.duplicates, "no lease was lost: no event was sent again")
	})
}

// BenchmarkDelivery10k is issue 23's delivery target: 10,000 events,
// appended beforehand, delivered by three Deliverers on three pools of one
// database (three processes) to a receiver that fails 20 % of attempts at
// random, first alone, then beside a second endpoint whose receiver never
// answers (each attempt ends at the Sender's 2 s timeout, and its events
// are retried and dead-lettered meanwhile). Each run is also a check: every
// event is delivered, in stream order, each request verifies with the
// Standard Webhooks reference library, an event that arrives twice has the
// same id (no event is sent under two ids), and nothing is dead-lettered
// for the healthy endpoint.
//
// It reports the seconds each run took to deliver all 10,000 events to the
// healthy endpoint (alone-s, hanging-s), the p99 of the time between two
// consecutive first deliveries (alone-p99-ms, hanging-p99-ms: the healthy
// endpoint delivers one event at a time), events the healthy receiver
// accepted more than once (dups: retries of the same id after a lost
// lease), requests that failed verification (verify-fail: 0) and the
// attempts the hanging endpoint received. Run it with -benchtime 1x.
func BenchmarkDelivery10k(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			for range b.N {
				run := deliveryRun{total: 10_000, timeout: 2 * time.Second, lease: 10 * time.Second, batch: 500}
				alone := runDelivery(b, be, be.fresh(b), run)
				alone.assert(b)
				run.hanging = true
				hanging := runDelivery(b, be, be.fresh(b), run)
				hanging.assert(b)
				require.Positive(b, hanging.hangingAttempts, "the hanging endpoint was tried")
				b.ReportMetric(alone.elapsed.Seconds(), "alone-s")
				b.ReportMetric(hanging.elapsed.Seconds(), "hanging-s")
				b.ReportMetric(float64(alone.p99Gap.Microseconds())/1000, "alone-p99-ms")
				b.ReportMetric(float64(hanging.p99Gap.Microseconds())/1000, "hanging-p99-ms")
				b.ReportMetric(float64(alone.duplicates+hanging.duplicates), "dups")
				b.ReportMetric(float64(alone.bad+hanging.bad), "verify-fail")
				b.ReportMetric(float64(hanging.hangingAttempts), "hanging-attempts")
			}
		})
	}
}

// deliveryRun configures runDelivery.
type deliveryRun struct {
	total   int           // events appended before the Deliverers start
	hanging bool          // add an endpoint whose receiver never answers
	timeout time.Duration // the Senders' timeout of one attempt
	lease   time.Duration // the Deliverers' lease
	batch   int           // the Deliverers' page of events
}

// deliveryResult is what runDelivery saw.
type deliveryResult struct {
	stream          []apikey.StreamEvent
	rcv             *stdReceiver
	dead            []apikey.DeadLetter
	elapsed         time.Duration // from the Deliverers' start to the last first delivery
	p99Gap          time.Duration // p99 of the time between two consecutive first deliveries
	duplicates      int           // accepted requests beyond the first of each id
	bad             int           // requests that did not verify
	hangingAttempts int64
	hangingInFlight int64 // attempts of the hanging endpoint waiting when the last event arrived
}

// runDelivery appends run.total events (of two accounts) to a fresh
// database, then runs three Deliverers, each on a pool of its own, until
// the healthy endpoint ("ops") has accepted every event, or five minutes
// pass.
func runDelivery(tb testing.TB, b backend, dsn string, run deliveryRun) deliveryResult {
	tb.Helper()
	ctx := context.Background()
	first := b.store(tb, dsn, sqlstore.Options{})
	for start := 0; start < run.total; start += 500 {
		var batch []apikey.Event
		for i := start; i < min(start+500, run.total); i++ {
			batch = append(batch, apikey.Event{Time: fixtureNow, Actor: owner, Action: apikey.ActionCreate,
				Account: []string{"acme", "globex"}[i%2], Environment: apikey.Production, Detail: fmt.Sprint(i)})
		}
		require.NoError(tb, first.Apply(ctx, apikey.Change{Events: batch}))
	}
	var stream []apikey.StreamEvent
	for cursor := int64(0); ; {
		page, next, err := first.EventsAfter(ctx, cursor, 0)
		require.NoError(tb, err)
		if len(page) == 0 {
			break
		}
		stream, cursor = append(stream, page...), next
	}
	require.Equal(tb, run.total, len(stream), "events appended")

	secret := webhook.GenerateSecret()
	rcv := newStdReceiver(tb, secret, 0.2)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var hang hangingReceiver
	hangSrv := httptest.NewServer(&hang)
	defer hangSrv.Close()
	endpoints := []events.Endpoint{{Name: "ops", Webhook: webhook.Endpoint{URL: srv.URL, Secrets: []webhook.Secret{secret}}}}
	if run.hanging {
		endpoints = append(endpoints, events.Endpoint{Name: "hangs",
			Webhook: webhook.Endpoint{URL: hangSrv.URL, Secrets: []webhook.Secret{secret}}})
	}
	sender, err := webhook.NewSender(webhook.Options{Timeout: run.timeout,
		Policy: webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	require.NoError(tb, err)

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, before the servers close
	runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel() // ends the hanging attempts
	deliverers := make([]*events.Deliverer, 3)
	for i := range deliverers {
		deliverers[i], err = events.NewDeliverer(events.DelivererOptions{
			Store: b.store(tb, dsn, sqlstore.Options{}), Sender: sender, Holder: fmt.Sprintf("process-%d", i),
			Endpoints: endpoints,
			Retry:     webhook.RetryPolicy{Schedule: webhook.Exponential(time.Millisecond, 10*time.Millisecond, 12)},
			Lease:     run.lease, Poll: 10 * time.Millisecond, Batch: run.batch,
		})
		require.NoError(tb, err)
	}
	start := time.Now()
	rcv.start(start)
	for _, d := range deliverers {
		wg.Go(func() { _ = d.Run(runCtx) })
	}
	for rcv.Count() < run.total && runCtx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	inFlight := hang.inFlight.Load()
	cancel()
	wg.Wait()

	dead, err := first.DeadLetters(ctx, "ops", 0, 10)
	require.NoError(tb, err)
	res := deliveryResult{stream: stream, rcv: rcv, dead: dead, hangingAttempts: hang.attempts.Load(),
		hangingInFlight: inFlight}
	res.elapsed, res.p99Gap, res.duplicates, res.bad = rcv.figures()
	return res
}

// assert fails tb unless every event of the stream reached the healthy
// endpoint, in stream order, each under its own id and no other, every
// request verified, and nothing was dead-lettered there.
func (r deliveryResult) assert(tb testing.TB) {
	tb.Helper()
	rcv := r.rcv
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Zero(tb, rcv.bad, "every request verifies with the Standard Webhooks library")
	require.Equal(tb, len(r.stream), len(rcv.order), "every event delivered")
	for i, se := range r.stream {
		require.Equal(tb, se.Event.ID(), rcv.order[i], "stream order")
		require.Equal(tb, []string{se.Event.ID()}, rcv.idsByDetail[se.Event.Detail], "one id per event")
	}
	require.Empty(tb, r.dead, "nothing dead-lettered for the healthy endpoint")
}

// stdReceiver is a webhook endpoint that verifies each request with the
// Standard Webhooks reference library and checks that the payload's event
// has the request's webhook-id; it refuses a share of the verified ones
// at random, with a 500, and records when each id was first accepted.
type stdReceiver struct {
	wh       *standardwebhooks.Webhook
	failRate float64

	mu          sync.Mutex
	began       time.Time
	accepted    map[string]int             // by webhook-id: accepted requests
	order       []string                   // ids in the order first accepted
	firstAt     []time.Time                // when each of order was first accepted
	idsByDetail map[string][]string        // by the event's Detail (one per event): the ids it came under
	bad         int                        // requests that did not verify
	seen        map[string]map[string]bool // by Detail: the ids seen, to keep idsByDetail distinct
}

func newStdReceiver(tb testing.TB, secret webhook.Secret, failRate float64) *stdReceiver {
	wh, err := standardwebhooks.NewWebhook(secret.Reveal())
	require.NoError(tb, err)
	return &stdReceiver{wh: wh, failRate: failRate, accepted: map[string]int{}, idsByDetail: map[string][]string{},
		seen: map[string]map[string]bool{}}
}

func (r *stdReceiver) start(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.began = at
}

func (r *stdReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	err := r.wh.Verify(body, req.Header)
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	var p events.Payload
	if err == nil && (json.Unmarshal(body, &p) != nil || p.Data.ID() != id) {
		err = fmt.Errorf("the payload's event is not %s", id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rand.Float64() < r.failRate {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.accepted[id] == 0 {
		r.order = append(r.order, id)
		r.firstAt = append(r.firstAt, time.Now())
	}
	r.accepted[id]++
	if r.seen[p.Data.Detail] == nil {
		r.seen[p.Data.Detail] = map[string]bool{}
	}
	if !r.seen[p.Data.Detail][id] {
		r.seen[p.Data.Detail][id] = true
		r.idsByDetail[p.Data.Detail] = append(r.idsByDetail[p.Data.Detail], id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Count returns how many distinct events were accepted.
func (r *stdReceiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// figures returns the time from start to the last first acceptance, the
// p99 of the time between consecutive first acceptances, the accepted
// requests beyond the first of each id and the requests that did not
// verify.
func (r *stdReceiver) figures() (elapsed, p99 time.Duration, duplicates, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.firstAt) == 0 {
		return 0, 0, 0, r.bad
	}
	gaps := make([]time.Duration, len(r.firstAt))
	prev := r.began
	for i, at := range r.firstAt {
		gaps[i], prev = at.Sub(prev), at
	}
	slices.Sort(gaps)
	for _, n := range r.accepted {
		duplicates += n - 1
	}
	return r.firstAt[len(r.firstAt)-1].Sub(r.began), gaps[len(gaps)*99/100], duplicates, r.bad
}

// hangingReceiver never answers: each request waits until its client goes
// away (which the server notices once the body is read).
type hangingReceiver struct {
	attempts, inFlight atomic.Int64
}

func (h *hangingReceiver) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	h.attempts.Add(1)
	h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}
