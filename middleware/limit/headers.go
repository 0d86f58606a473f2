package limit

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keystile/keystile/apikey"
)

// PolicyName is the name SetHeaders gives the rate limit in the
// RateLimit-Policy and RateLimit fields: the limit that applies to the
// request's key, whether the key's own or the one its owner's keys share
// (the identity says which).
const PolicyName = "key"

// The canonical forms of the header names SetHeaders writes.
const (
	headerPolicy     = "Ratelimit-Policy"
	headerRateLimit  = "Ratelimit"
	headerRetryAfter = "Retry-After"
)

// SetHeaders sets the RateLimit-Policy and RateLimit fields of the IETF
// httpapi draft "RateLimit header fields for HTTP"
// (draft-ietf-httpapi-ratelimit-headers, the form of revision 11, whose
// policy names are Strings; the editor's copy since accepts a String or a
// Token)
// for a request decided d under rate, and Retry-After when d refused it,
// replacing any values these fields had in h:
//
//	RateLimit-Policy: "key";q=<Requests>;w=<Window in seconds>[;keystile-burst=<Burst>]
//	RateLimit: "key";r=<Remaining>;t=<seconds>
//	Retry-After: <seconds>
//
// keystile-burst is present when the burst differs from Requests. t is
// the time until the bucket is full again (d.Reset) for an admitted
// request, and the time until the request could be admitted
// (d.RetryAfter) for a refused one, which Retry-After repeats; all times
// are whole seconds rounded up.
//
// The value slices SetHeaders puts in h are shared with other responses
// that carry the same values, so that a key used below its limit (whose
// fields repeat from one request to the next) costs no allocation: a
// handler may replace, extend or delete these fields (Header.Set, Add,
// Del) but must not modify their slices in place. A process remembers the
// values of up to 256 distinct decisions; others cost two allocations.
func SetHeaders(h http.Header, rate apikey.RateLimit, d Decision) {
	t := d.Reset
	if !d.Allowed {
		t = d.RetryAfter
	}
	v := fieldValues{rate: rate, allowed: d.Allowed, remaining: int64(max(d.Remaining, 0)), seconds: seconds(t)}
	slot := &shared[v.slot()]
	f := slot.Load()
	if f == nil || f.fieldValues != v {
		f = v.format()
		slot.Store(f)
	}
	h[headerPolicy] = f.policy
	h[headerRateLimit] = f.current
	if !d.Allowed {
		h[headerRetryAfter] = f.retryAfter
	}
}

// fieldValues are what SetHeaders' fields say.
type fieldValues struct {
	rate               apikey.RateLimit
	allowed            bool
	remaining, seconds int64
}

// fields are the formatted values of fieldValues, shared between
// responses and never modified.
type fields struct {
	fieldValues
	values                      [3]string // what the slices below hold: one allocation with the struct
	policy, current, retryAfter []string
}

// shared holds the fields SetHeaders formatted last, by fieldValues.slot.
var shared [256]atomic.Pointer[fields]

// slot returns v's index in shared: a mix of every value, so that limits
// and decisions that differ in any of them rarely share a slot.
func (v fieldValues) slot() uint8 {
	x := uint64(v.rate.Requests)*0x9e3779b97f4a7c15 ^ uint64(v.rate.Window) ^ uint64(v.rate.Burst)<<21 ^
		uint64(v.remaining)*0xbf58476d1ce4e5b9 ^ uint64(v.seconds)<<40
	if v.allowed {
		x = ^x
	}
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return uint8(x >> 56)
}

// format formats v's fields, each value a slice of length and capacity 1
// (so that Header.Add copies it rather than writing past it).
func (v fieldValues) format() *fields {
	var buf [160]byte
	b := append(buf[:0], '"')
	b = append(b, PolicyName...)
	b = append(b, `";q=`...)
	b = strconv.AppendInt(b, int64(v.rate.Requests), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, seconds(v.rate.Window), 10)
	if v.rate.Burst != 0 && v.rate.Burst != v.rate.Requests {
		b = append(b, ";keystile-burst="...)
		b = strconv.AppendInt(b, int64(v.rate.Burst), 10)
	}
	policy := len(b)
	b = append(b, '"')
	b = append(b, PolicyName...)
	b = append(b, `";r=`...)
	b = strconv.AppendInt(b, v.remaining, 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, v.seconds, 10)
	current := len(b)
	b = strconv.AppendInt(b, v.seconds, 10)
	s := string(b)
	f := &fields{fieldValues: v, values: [3]string{s[:policy], s[policy:current], s[current:]}}
	f.policy, f.current, f.retryAfter = f.values[0:1:1], f.values[1:2:2], f.values[2:3:3]
	return f
}

// seconds returns d in whole seconds, rounded up; 0 for d <= 0.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
