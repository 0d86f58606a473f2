package limit

import (
	"net/http"
	"strconv"
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
// are whole seconds rounded up. SetHeaders makes two allocations.
func SetHeaders(h http.Header, rate apikey.RateLimit, d Decision) {
	var buf [160]byte
	b := append(buf[:0], '"')
	b = append(b, PolicyName...)
	b = append(b, `";q=`...)
	b = strconv.AppendInt(b, int64(rate.Requests), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, seconds(rate.Window), 10)
	if rate.Burst != 0 && rate.Burst != rate.Requests {
		b = append(b, ";keystile-burst="...)
		b = strconv.AppendInt(b, int64(rate.Burst), 10)
	}
	policy := len(b)
	b = append(b, '"')
	b = append(b, PolicyName...)
	b = append(b, `";r=`...)
	t := d.Reset
	if !d.Allowed {
		t = d.RetryAfter
	}
	b = strconv.AppendInt(b, int64(max(d.Remaining, 0)), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, seconds(t), 10)
	current := len(b)
	if !d.Allowed {
		b = strconv.AppendInt(b, seconds(t), 10)
	}
	s := string(b)
	n := 2
	if !d.Allowed {
		n = 3
	}
	v := make([]string, n)
	v[0], v[1] = s[:policy], s[policy:current]
	h[headerPolicy] = v[0:1:1]
	h[headerRateLimit] = v[1:2:2]
	if !d.Allowed {
		v[2] = s[current:]
		h[headerRetryAfter] = v[2:3:3]
	}
}

// seconds returns d in whole seconds, rounded up; 0 for d <= 0.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
