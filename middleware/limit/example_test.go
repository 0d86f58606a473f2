package limit_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

func ExampleNewLocal() {
	l := limit.NewLocal(limit.LocalOptions{MaxBuckets: 100_000})
	rate := apikey.RateLimit{Requests: 60, Window: time.Minute, Burst: 2}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		d := l.Allow("key_123", rate, 1, now)
		fmt.Printf("request %d: allowed=%t remaining=%d retry-after=%s\n", i+1, d.Allowed, d.Remaining, d.RetryAfter)
	}
	d := l.Allow("key_123", rate, 1, now.Add(time.Second))
	fmt.Printf("a second later: allowed=%t remaining=%d\n", d.Allowed, d.Remaining)
	// Output:
	// request 1: allowed=true remaining=1 retry-after=0s
	// request 2: allowed=true remaining=0 retry-after=0s
	// request 3: allowed=false remaining=0 retry-after=1s
	// a second later: allowed=true remaining=0
}

func ExampleLocal_Handle() {
	l := limit.NewLocal(limit.LocalOptions{})
	rate := apikey.RateLimit{Requests: 60, Window: time.Minute, Burst: 2}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := l.Handle("key_123") // kept with the key, to spend without a look-up
	fmt.Println(h.Allow(rate, 1, now).Remaining)
	fmt.Println(l.Allow("key_123", rate, 1, now).Remaining) // the same bucket
	fmt.Println(h.Allow(rate, 1, now).Allowed)
	// Output:
	// 1
	// 0
	// false
}

func ExampleSetHeaders() {
	rate := apikey.RateLimit{Requests: 100, Window: time.Minute}
	h := http.Header{}
	limit.SetHeaders(h, rate, limit.Decision{Reset: 59 * time.Second, RetryAfter: 200 * time.Millisecond})
	for _, name := range []string{"RateLimit-Policy", "RateLimit", "Retry-After"} {
		fmt.Printf("%s: %s\n", name, h.Get(name))
	}
	// Output:
	// RateLimit-Policy: "key";q=100;w=60
	// RateLimit: "key";r=0;t=1
	// Retry-After: 1
}
