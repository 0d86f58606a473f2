package limit_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

func TestSetHeaders(t *testing.T) {
	perMin := apikey.RateLimit{Requests: 100, Window: time.Minute}
	tests := []struct {
		name                   string
		rate                   apikey.RateLimit
		d                      limit.Decision
		policy, current, retry string
	}{
		{"admitted", perMin, limit.Decision{Allowed: true, Remaining: 42, Reset: 12*time.Second + time.Millisecond},
			`"key";q=100;w=60`, `"key";r=42;t=13`, ""},
		{"admitted, full", perMin, limit.Decision{Allowed: true, Remaining: 99, Reset: 600 * time.Millisecond},
			`"key";q=100;w=60`, `"key";r=99;t=1`, ""},
		{"refused: t and Retry-After round up", perMin, limit.Decision{Reset: time.Minute, RetryAfter: 1400 * time.Millisecond},
			`"key";q=100;w=60`, `"key";r=0;t=2`, "2"},
		{"refused, whole seconds stay", perMin, limit.Decision{Reset: time.Minute, RetryAfter: 3 * time.Second},
			`"key";q=100;w=60`, `"key";r=0;t=3`, "3"},
		{"burst differs", apikey.RateLimit{Requests: 1000, Window: time.Hour, Burst: 10}, limit.Decision{Allowed: true, Remaining: 9, Reset: 3600 * time.Millisecond},
			`"key";q=1000;w=3600;keystile-burst=10`, `"key";r=9;t=4`, ""},
		{"burst equal to requests is not repeated", apikey.RateLimit{Requests: 5, Window: time.Second, Burst: 5}, limit.Decision{Allowed: true},
			`"key";q=5;w=1`, `"key";r=0;t=0`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("RateLimit", "stale")
			limit.SetHeaders(h, tt.rate, tt.d)
			assert.Equal(t, []string{tt.policy}, h.Values("RateLimit-Policy"))
			assert.Equal(t, []string{tt.current}, h.Values("RateLimit"))
			assert.Equal(t, tt.retry, h.Get("Retry-After"))
			// Appending to one field leaves the others intact.
			h.Add("RateLimit", `"other";r=1`)
			assert.Equal(t, []string{tt.policy}, h.Values("RateLimit-Policy"))
			assert.Equal(t, tt.retry, h.Get("Retry-After"))
		})
	}
}

// TestSetHeadersSharesValues checks the contract of the values SetHeaders
// shares between responses: a repeated decision costs no allocation, a
// field extended on one response is unchanged on the next, and decisions
// that replace each other in the process's memory still get their own
// values.
func TestSetHeadersSharesValues(t *testing.T) {
	rate := apikey.RateLimit{Requests: 100, Window: time.Minute}
	d := limit.Decision{Allowed: true, Remaining: 99, Reset: 600 * time.Millisecond}
	h := http.Header{}
	allocs := testing.AllocsPerRun(100, func() { limit.SetHeaders(h, rate, d) })
	assert.Zero(t, allocs, "a repeated decision allocates nothing")
	n := 0
	allocs = testing.AllocsPerRun(100, func() {
		n++
		limit.SetHeaders(h, rate, limit.Decision{Allowed: true, Remaining: 1000 + n, Reset: time.Second})
	})
	assert.Equal(t, 2.0, allocs, "a new decision: its text, and its record with the slices")

	first := http.Header{}
	limit.SetHeaders(first, rate, d)
	first.Add("RateLimit", `"other";r=1`)
	first.Set("RateLimit-Policy", "replaced")
	next := http.Header{}
	limit.SetHeaders(next, rate, d)
	assert.Equal(t, []string{`"key";r=99;t=1`}, next.Values("RateLimit"))
	assert.Equal(t, []string{`"key";q=100;w=60`}, next.Values("RateLimit-Policy"))

	// More distinct decisions than the memory holds, twice over, from
	// several goroutines: each response carries its own decision's values.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				remaining := (i*7 + g) % 1000
				h := http.Header{}
				limit.SetHeaders(h, rate, limit.Decision{Allowed: true, Remaining: remaining, Reset: time.Duration(i%60+1) * time.Second})
				want := `"key";r=` + strconv.Itoa(remaining) + ";t=" + strconv.Itoa(i%60+1)
				if got := h.Get("RateLimit"); got != want {
					t.Errorf("RateLimit %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSetHeaders(b *testing.B) {
	rate := apikey.RateLimit{Requests: 1000, Window: time.Minute}
	for _, d := range []limit.Decision{
		{Allowed: true, Remaining: 999, Reset: 60 * time.Millisecond},
		{Reset: time.Minute, RetryAfter: 60 * time.Millisecond},
	} {
		name := "admitted"
		if !d.Allowed {
			name = "refused"
		}
		b.Run(name, func(b *testing.B) {
			h := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				limit.SetHeaders(h, rate, d)
			}
		})
	}
}
