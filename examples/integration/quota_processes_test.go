package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware"
	"github.com/keystile/keystile/storage/faultstore"
	"github.com/keystile/keystile/storage/sqlstore"
)

// The quota spent across processes, and how its spenders run.
const (
	quotaUses      = 10_000
	quotaProcesses = 3
	quotaWorkers   = 4    // goroutines sending requests in each process
	quotaMinLease  = 10   // the fewest uses a lease asks for (internal/quota.DefaultMinLease)
	quotaMaxLease  = 1000 // the most (internal/quota.DefaultMaxLease): the bound's term per instance
	quotaRefusals  = 200  // consecutive quota_exhausted answers that end a worker
	quotaStop      = 2000 // uses each process of the first round admits before it stops
	quotaSpendTime = 2 * time.Minute
	// quotaExtraLeases is how many LeaseQuota calls a process may make
	// beyond one per quotaMinLease uses admitted: the calls that find the
	// store empty (at most one per lease time, and the first) and one
	// whose grant the store cut short.
	quotaExtraLeases = 5
)

// The environment of a spender process of TestQuotaAcrossProcesses.
const (
	quotaChildDSNEnv  = "KEYSTILE_TEST_QUOTA_DSN"  // set: the process is a spender, on this schema
	quotaChildKeyEnv  = "KEYSTILE_TEST_QUOTA_KEY"  // the key to spend (a secret: never printed)
	quotaChildStopEnv = "KEYSTILE_TEST_QUOTA_STOP" // uses admitted after which it stops; 0: until the quota is exhausted
)

// quotaReport is what a spender process reports after its Validator
// closed.
type quotaReport struct {
	Admitted    int64         `json:"admitted"`     // 200 answers
	Exhausted   int64         `json:"exhausted"`    // 429 quota_exhausted answers
	Other       int64         `json:"other"`        // any other answer
	Leases      int64         `json:"leases"`       // LeaseQuota calls
	ShortLeases int64         `json:"short_leases"` // leases of fewer than quotaMinLease uses while the store held more
	Granted     int64         `json:"granted"`      // uses the leases granted
	Returns     int64         `json:"returns"`      // ReturnQuota calls
	Returned    int64         `json:"returned"`     // uses they gave back
	Spending    time.Duration `json:"spending"`     // from the start signal to the last worker's end
}

// TestQuotaAcrossProcesses spends one key's quota of 10,000 uses (no
// refill) from OS processes on one PostgreSQL schema, each with its own
// pool, store and Validator, and 4 goroutines sending requests through
// the Validator's handler as fast as they can. First 3 processes stop
// after admitting quotaStop uses each and close their Validators, which
// return the unspent uses of their leases; then 3 others spend the rest
// until the quota is exhausted. With the processes' clocks in agreement
// (one machine), the uses admitted in total never exceed the quota, and
// fall short of it by at most the leases held elsewhere, (processes − 1)
// × MaxLease; the quota's exhaustion is one quota_exhausted event; each
// process takes a lease (one store write) per 10 uses or
// more admitted, and admits exactly the uses it leased and did not
// return; and after every Validator closed, the store holds exactly the
// uses not admitted: none is lost or admitted twice.
func TestQuotaAcrossProcesses(t *testing.T) {
	if dsn := os.Getenv(quotaChildDSNEnv); dsn != "" {
		stop, err := strconv.ParseInt(os.Getenv(quotaChildStopEnv), 10, 64)
		require.NoError(t, err)
		spendQuota(t, dsn, os.Getenv(quotaChildKeyEnv), stop)
		return
	}
	ctx := context.Background()
	dsn := postgresBackend.fresh(t)
	s := postgresBackend.store(t, dsn, sqlstore.Options{})
	m, err := apikey.NewManager(apikey.ManagerOptions{Store: s, Hasher: testHasher})
	require.NoError(t, err)
	_, err = m.Bootstrap(ctx, owner, apikey.Production)
	require.NoError(t, err)
	issued, err := m.Create(ctx, owner, apikey.CreateRequest{Environment: apikey.Production, Type: apikey.Server, Scopes: []string{"*"},
		Limits: apikey.Limits{Quota: apikey.Quota{Limit: quotaUses}}})
	require.NoError(t, err)
	env := []string{quotaChildDSNEnv + "=" + dsn, quotaChildKeyEnv + "=" + issued.Key.Reveal()}

	var admitted int64
	for _, stop := range []int64{quotaStop, 0} {
		reports := spendRound(t, env, stop)
		var round quotaReport
		for i, r := range reports {
			assert.Zero(t, r.Other, "process %d: every answer is 200 or 429 quota_exhausted", i)
			if stop > 0 {
				assert.GreaterOrEqual(t, r.Admitted, stop, "process %d admits until it stops", i)
			}
			assert.LessOrEqual(t, r.Leases, r.Admitted/quotaMinLease+quotaExtraLeases,
				"process %d: at most one LeaseQuota call per %d uses admitted", i, quotaMinLease)
			assert.Zero(t, r.ShortLeases, "process %d: a lease holds at least %d uses unless the store ran out", i, quotaMinLease)
			assert.Equal(t, r.Granted-r.Returned, r.Admitted, "process %d admits exactly the uses it leased and did not return", i)
			round.Admitted += r.Admitted
			round.Returned += r.Returned
		}
		if stop > 0 {
			assert.Positive(t, round.Returned, "processes that stop early return unspent uses at Close")
		}
		admitted += round.Admitted
	}

	final, err := s.LeaseQuota(ctx, issued.View.ID, quotaUses, time.Now())
	require.NoError(t, err)
	t.Logf("quota of %d: %d admitted in all (bound %d to %d), %d uses left in the store",
		quotaUses, admitted, quotaUses-(quotaProcesses-1)*quotaMaxLease, quotaUses, final.Granted)
	assert.LessOrEqual(t, admitted, int64(quotaUses), "never more admitted than the quota (clocks agree)")
	assert.GreaterOrEqual(t, admitted, int64(quotaUses-(quotaProcesses-1)*quotaMaxLease),
		"at most the other processes' leases left unspent")
	assert.Equal(t, quotaUses-admitted, final.Granted, "the store holds every use not admitted")
	assert.Zero(t, final.Remaining)

	// The quota ran out once: one quota_exhausted event, whatever the
	// processes and their refused leases.
	var exhausted []apikey.Event
	for cursor := int64(0); ; {
		page, next, err := s.EventsAfter(ctx, cursor, 0)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		for _, se := range page {
			if se.Event.Action == apikey.ActionQuotaExhausted {
				exhausted = append(exhausted, se.Event)
			}
		}
		cursor = next
	}
	require.Len(t, exhausted, 1, "one event for the quota's one period")
	assert.Equal(t, issued.View.ID, exhausted[0].KeyID)
}

// spendRound starts quotaProcesses spender processes with env, each
// stopping after stop uses admitted (0: when the quota is exhausted),
// starts them spending together and returns their reports.
func spendRound(t *testing.T, env []string, stop int64) []quotaReport {
	env = append(env[:len(env):len(env)], quotaChildStopEnv+"="+strconv.FormatInt(stop, 10))
	spenders := make([]*helper, quotaProcesses)
	for i := range spenders {
		spenders[i] = startProcess(t, "TestQuotaAcrossProcesses", env)
	}
	for _, h := range spenders {
		require.Equal(t, "ready", h.next(t, 30*time.Second))
	}
	start := time.Now()
	for _, h := range spenders {
		h.send(t, "go")
	}
	reports := make([]quotaReport, quotaProcesses)
	var total quotaReport
	for i, h := range spenders {
		line, ok := strings.CutPrefix(h.next(t, quotaSpendTime+time.Minute), "report ")
		require.True(t, ok, "process %d reports:\n%s\n%s", i, h.output, h.stderr)
		require.NoError(t, json.Unmarshal([]byte(line), &reports[i]))
		r := reports[i]
		t.Logf("stop at %d: process %d: %d admitted, %d quota_exhausted, %d other; %d LeaseQuota calls granting %d uses, %d ReturnQuota calls returning %d; spent in %s",
			stop, i, r.Admitted, r.Exhausted, r.Other, r.Leases, r.Granted, r.Returns, r.Returned, r.Spending.Round(time.Millisecond))
		total.Admitted += r.Admitted
		total.Leases += r.Leases
		total.Returns += r.Returns
		total.Returned += r.Returned
	}
	t.Logf("stop at %d: %d admitted by %d processes, %d LeaseQuota and %d ReturnQuota calls (%d uses returned); %s from the start to the last report",
		stop, total.Admitted, quotaProcesses, total.Leases, total.Returns, total.Returned, time.Since(start).Round(time.Millisecond))
	for _, h := range spenders {
		h.stop(t)
	}
	return reports
}

// spendQuota is a spender process of TestQuotaAcrossProcesses: it opens
// its own store on dsn and a Validator over it, says "ready", waits for
// "go" on stdin, spends the key's quota from quotaWorkers goroutines until
// it admitted stop uses (if stop > 0) or each has had quotaRefusals
// quota_exhausted answers in a row (or quotaSpendTime has passed), closes the Validator (which returns unspent
// uses) and prints its quotaReport.
func spendQuota(t *testing.T, dsn, secret string, stop int64) {
	db := postgresBackend.open(t, dsn)
	defer db.Close()
	inner, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.Postgres})
	require.NoError(t, err)
	store := faultstore.New(inner)
	var rep quotaReport
	store.After(func(_ context.Context, c *faultstore.Call) {
		if c.Err != nil {
			return
		}
		atomic.AddInt64(&rep.Granted, c.Lease.Granted)
		if c.Lease.Granted < quotaMinLease && c.Lease.Remaining > 0 {
			atomic.AddInt64(&rep.ShortLeases, 1)
		}
	}, faultstore.OpLeaseQuota)
	store.After(func(_ context.Context, c *faultstore.Call) {
		if c.Err == nil {
			atomic.AddInt64(&rep.Returned, c.Uses)
		}
	}, faultstore.OpReturnQuota)
	v, err := middleware.New(middleware.Options{Store: store, Hasher: testHasher,
		OnBackgroundError: func(err error) { t.Errorf("background error: %v", err) }})
	require.NoError(t, err)
	h := v.Handler(okHandler)

	protocol(t, "ready")
	require.Equal(t, "go", readLine(t))
	start := time.Now()
	var wg sync.WaitGroup
	for range quotaWorkers {
		wg.Go(func() {
			for streak := 0; streak < quotaRefusals && time.Since(start) < quotaSpendTime; {
				if stop > 0 && atomic.LoadInt64(&rep.Admitted) >= stop {
					return
				}
				r := httptest.NewRequest(http.MethodGet, "/orders", nil)
				r.Header.Set("X-API-Key", secret)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				switch {
				case w.Code == http.StatusOK:
					atomic.AddInt64(&rep.Admitted, 1)
					streak = 0
				case w.Code == http.StatusTooManyRequests && problemCode(w.Body.Bytes()) == "quota_exhausted":
					atomic.AddInt64(&rep.Exhausted, 1)
					streak++
				default:
					atomic.AddInt64(&rep.Other, 1)
				}
			}
		})
	}
	wg.Wait()
	rep.Spending = time.Since(start)
	require.NoError(t, v.Close())
	rep.Leases, rep.Returns = store.Calls(faultstore.OpLeaseQuota), store.Calls(faultstore.OpReturnQuota)
	out, err := json.Marshal(&rep)
	require.NoError(t, err)
	protocol(t, "report "+string(out))
}

// protocol prints one line of a helper process's protocol to its parent.
func protocol(t *testing.T, line string) {
	_, err := os.Stdout.WriteString(helperMark + line + "\n")
	require.NoError(t, err)
}

// readLine reads one line from stdin, without its newline.
func readLine(t *testing.T) string {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err, "stdin ended")
	return strings.TrimSuffix(line, "\n")
}

// problemCode returns the code of a problem response's body, or "".
func problemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Code
}
