package webhook_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/keystile/keystile/apikey/webhook"
)

func TestDefaultSchedule(t *testing.T) {
	var p webhook.RetryPolicy
	assert.Equal(t, 8, p.MaxAttempts())
	var total time.Duration
	for _, d := range webhook.DefaultSchedule {
		total += d
	}
	assert.Equal(t, 27*time.Hour+35*time.Minute+5*time.Second, total, "the total documented on DefaultSchedule")
}

func TestRetryPolicyDecide(t *testing.T) {
	def := webhook.RetryPolicy{}
	short := webhook.RetryPolicy{Schedule: []time.Duration{time.Second, time.Minute}}
	single := webhook.RetryPolicy{Schedule: []time.Duration{}}
	failFast := webhook.RetryPolicy{FailFast: true}
	retry := func(d time.Duration) webhook.Decision { return webhook.Decision{Action: webhook.RetryLater, Wait: d} }
	for _, tc := range []struct {
		name     string
		p        webhook.RetryPolicy
		o        webhook.Outcome
		attempts int
		random   float64
		want     webhook.Decision
	}{
		{"delivered", def, webhook.Delivered, 1, 0.5, webhook.Decision{Action: webhook.Done}},
		{"delivered late", def, webhook.Delivered, 8, 0.5, webhook.Decision{Action: webhook.Done}},
		{"gone", def, webhook.Gone, 1, 0.5, webhook.Decision{Action: webhook.Disable}},
		{"first retry, top of jitter", def, webhook.Retry, 1, 0.999999, retry(4999995 * time.Microsecond)},
		{"first retry, middle", def, webhook.Retry, 1, 0.5, retry(2500 * time.Millisecond)},
		{"first retry, bottom", def, webhook.Retry, 1, 0, retry(0)},
		{"second retry", def, webhook.Retry, 2, 0.5, retry(150 * time.Second)},
		{"last retry", def, webhook.Retry, 7, 0.5, retry(5 * time.Hour)},
		{"after the last attempt", def, webhook.Retry, 8, 0.5, webhook.Decision{Action: webhook.DeadLetter}},
		{"far past the last attempt", def, webhook.Retry, 100, 0.5, webhook.Decision{Action: webhook.DeadLetter}},
		{"failed retries by default", def, webhook.Failed, 3, 0.5, retry(15 * time.Minute)},
		{"failed, fail fast", failFast, webhook.Failed, 1, 0.5, webhook.Decision{Action: webhook.DeadLetter}},
		{"retry, fail fast", failFast, webhook.Retry, 1, 0.5, retry(2500 * time.Millisecond)},
		{"short schedule", short, webhook.Retry, 2, 0.5, retry(30 * time.Second)},
		{"short schedule ends", short, webhook.Retry, 3, 0.5, webhook.Decision{Action: webhook.DeadLetter}},
		{"single attempt", single, webhook.Retry, 1, 0.5, webhook.Decision{Action: webhook.DeadLetter}},
		{"attempts 0 counts as 1", def, webhook.Retry, 0, 0.5, retry(2500 * time.Millisecond)},
		{"random above 1 clamps", def, webhook.Retry, 1, 7, retry(5 * time.Second)},
		{"random below 0 clamps", def, webhook.Retry, 1, -1, retry(0)},
		{"negative ceiling", webhook.RetryPolicy{Schedule: []time.Duration{-time.Second}}, webhook.Retry, 1, 0.5, retry(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.p.Decide(tc.o, tc.attempts, tc.random))
		})
	}
}

// TestRetryPolicyNextJitter: Next draws every wait within [0, ceiling],
// and spreads them (full jitter): a draw of a thousand is not all equal.
func TestRetryPolicyNextJitter(t *testing.T) {
	var p webhook.RetryPolicy
	for attempt, ceiling := range webhook.DefaultSchedule {
		seen := map[time.Duration]bool{}
		for range 1000 {
			d := p.Next(webhook.Retry, attempt+1)
			assert.Equal(t, webhook.RetryLater, d.Action)
			assert.GreaterOrEqual(t, d.Wait, time.Duration(0))
			assert.LessOrEqual(t, d.Wait, ceiling)
			seen[d.Wait] = true
		}
		assert.Greater(t, len(seen), 900, "attempt %d: waits are not spread", attempt+1)
	}
}

func TestExponential(t *testing.T) {
	s := time.Second
	assert.Equal(t, []time.Duration{s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s}, webhook.Exponential(s, 10*s, 6))
	assert.Equal(t, []time.Duration{}, webhook.Exponential(s, 10*s, 0))
	long := webhook.Exponential(time.Hour, 24*time.Hour, 100) // doubling overflows int64 long before 100
	assert.Len(t, long, 100)
	assert.Equal(t, 24*time.Hour, long[99])
	assert.Equal(t, "done retry later dead letter disable none",
		webhook.Done.String()+" "+webhook.RetryLater.String()+" "+webhook.DeadLetter.String()+" "+webhook.Disable.String()+" "+webhook.Action(0).String())
}
