package redislimit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/middleware/limit"
)

// The shared limit that TestSharedAccuracy drives: 1,000 requests per
// minute, burst 1,000, the default batch (10).
var (
	accuracyRate = apikey.RateLimit{Requests: 1000, Window: time.Minute}
	// accuracyWindows is how many windows the test drives.
	accuracyWindows = 2
	// accuracySpeed is how many simulated seconds pass per real second:
	// two windows of a minute take 6 s.
	accuracySpeed = 20
)

const (
	accuracyProcesses = 3
	childEnv          = "KEYSTILE_REDISLIMIT_CHILD"
)

// childResult is what each process reports.
type childResult struct {
	Attempts int     `json:"attempts"`
	Admitted []int   `json:"admitted"` // per window
	Scripts  int64   `json:"scripts"`  // EVALSHA and EVAL sent
	Stats    Stats   `json:"stats"`
	Batch    int     `json:"batch"`
	Lateness float64 `json:"lateness_ms"` // the worst delay of a request behind its schedule, real ms
}

// TestSharedAccuracy runs 3 OS processes (this test binary, re-executed)
// that share a limit of 1,000 requests per minute through one Redis and
// together drive it at 3 times that rate for two simulated minutes (6 s of
// real time; each request carries its simulated time, which the limiter
// and Redis use). It checks the bound of the package doc per window and
// overall, and that no process calls Redis more often than the limit holds
// batches.
func TestSharedAccuracy(t *testing.T) {
	addr := redisAddr(t)
	if os.Getenv(childEnv) != "" {
		runChild(t, addr)
		return
	}
	c, _ := newClient(t, addr)
	prefix := testPrefix(t, c)
	// Each process says READY on its stdout once set up, then reads the
	// common start time from its stdin.
	cmds := make([]*exec.Cmd, accuracyProcesses)
	outs := make([]*bytes.Buffer, accuracyProcesses) // stdout, complete once read is closed
	errs := make([]*bytes.Buffer, accuracyProcesses)
	read := make([]chan struct{}, accuracyProcesses)
	ins := make([]io.WriteCloser, accuracyProcesses)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestSharedAccuracy$", "-test.count=1", "-test.v")
		cmds[i].Env = append(os.Environ(), childEnv+"="+strconv.Itoa(i), "KEYSTILE_REDISLIMIT_PREFIX="+prefix)
		outs[i], errs[i], read[i] = &bytes.Buffer{}, &bytes.Buffer{}, make(chan struct{})
		stdout, err := cmds[i].StdoutPipe()
		require.NoError(t, err)
		cmds[i].Stderr = errs[i]
		ins[i], err = cmds[i].StdinPipe()
		require.NoError(t, err)
		require.NoError(t, cmds[i].Start())
		ready := make(chan struct{})
		go func() {
			defer close(read[i])
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "READY" {
					close(ready)
				}
				fmt.Fprintln(outs[i], sc.Text())
			}
		}()
		select {
		case <-ready:
		case <-read[i]:
			t.Fatalf("process %d ended before it was ready:\n%s\n%s", i, outs[i], errs[i])
		case <-time.After(30 * time.Second):
			t.Fatalf("process %d did not start", i)
		}
	}
	start := time.Now().Add(100 * time.Millisecond).UnixNano()
	for _, in := range ins {
		fmt.Fprintln(in, start)
		in.Close()
	}
	results := make([]childResult, accuracyProcesses)
	for i, cmd := range cmds {
		<-read[i]
		require.NoError(t, cmd.Wait(), "process %d:\n%s\n%s", i, outs[i], errs[i])
		found := false
		sc := bufio.NewScanner(bytes.NewReader(outs[i].Bytes()))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "RESULT "); ok {
				require.NoError(t, json.Unmarshal([]byte(rest), &results[i]))
				found = true
			}
		}
		require.True(t, found, "process %d printed no result:\n%s\n%s", i, outs[i], errs[i])
	}

	p, batch := accuracyProcesses, results[0].Batch
	burst, requests := accuracyRate.BurstSize(), accuracyRate.Requests
	// The limit holds B + d/T requests over the run, in batches.
	holds := burst + accuracyWindows*requests
	// A batch takes Batch·T to return: the run lasts this many of them.
	refills := accuracyWindows * requests / batch
	perWindow := make([]int, accuracyWindows)
	total, attempts := 0, 0
	for i, r := range results {
		t.Logf("process %d: %d attempts, admitted %v, %d scripts sent, %+v, worst lateness %.1f ms",
			i, r.Attempts, r.Admitted, r.Scripts, r.Stats, r.Lateness)
		attempts += r.Attempts
		for w, n := range r.Admitted {
			perWindow[w] += n
			total += n
		}
		assert.Zero(t, r.Stats.Errors, "process %d", i)
		admitted := 0
		for _, n := range r.Admitted {
			admitted += n
		}
		// One call per batch admitted (the last one may be on credit), one
		// refused call at most per Batch·T, and one EVAL to load the script.
		assert.LessOrEqual(t, r.Stats.Batches, int64(admitted/batch+1), "process %d batches", i)
		assert.LessOrEqual(t, r.Stats.Refused, int64(refills+1), "process %d refused calls", i)
		assert.Equal(t, r.Stats.Calls, r.Stats.Batches+r.Stats.Refused, "process %d calls", i)
		assert.LessOrEqual(t, r.Scripts, r.Stats.Calls+1, "process %d scripts sent", i)
	}
	t.Logf("%d processes, batch %d: %d attempts, admitted per window %v, %d in all", p, batch, attempts, perWindow, total)
	// Any interval of d: B + d/T + 2·P·Batch.
	assert.LessOrEqual(t, perWindow[0], burst+requests+2*p*batch, "first window")
	assert.LessOrEqual(t, total, holds+2*p*batch, "both windows")
	// Once the bucket is spent: Requests + (2·P+1)·Batch per window.
	assert.LessOrEqual(t, perWindow[1], requests+(2*p+1)*batch, "second window")
	// And the limit is not starved either.
	assert.GreaterOrEqual(t, perWindow[1], requests-2*batch, "second window")
	// The processes drove the limit at least twice over.
	assert.GreaterOrEqual(t, attempts, 2*accuracyWindows*requests)
}

// runChild is one process of TestSharedAccuracy: it drives its third of
// three times the limit and prints its result.
func runChild(t *testing.T, addr string) {
	i, _ := strconv.Atoi(os.Getenv(childEnv))
	c, scripts := newClient(t, addr)
	l := newLimiter(t, Options{Client: c, Prefix: os.Getenv("KEYSTILE_REDISLIMIT_PREFIX")})
	fmt.Println("READY")
	var startNs int64
	_, err := fmt.Fscanln(os.Stdin, &startNs)
	require.NoError(t, err)

	// Each process sends 1,000 requests per simulated minute, the three
	// interleaved: one request every 20 ms of simulated time in all.
	every := accuracyRate.Window / time.Duration(accuracyRate.Requests) // 60 ms: the limit's own pace
	offset := time.Duration(i) * every / accuracyProcesses
	start := time.Unix(0, startNs)
	sim0 := t0
	res := childResult{Admitted: make([]int, accuracyWindows), Batch: l.BatchFor(accuracyRate)}
	end := time.Duration(accuracyWindows) * accuracyRate.Window
	// The simulated clock is the real one, sped up, the same in every
	// process: a process that falls behind its schedule sends later, with
	// the time it sends at, so that the processes' clocks never disagree.
	for n := 0; ; n++ {
		due := start.Add((time.Duration(n)*every + offset) / time.Duration(accuracySpeed))
		time.Sleep(time.Until(due))
		real := time.Since(start)
		if late := time.Since(due); float64(late)/1e6 > res.Lateness {
			res.Lateness = float64(late) / 1e6
		}
		at := real * time.Duration(accuracySpeed)
		if at >= end {
			break
		}
		res.Attempts++
		var d limit.Decision = l.Allow("shared\x00owner_1", accuracyRate, 1, sim0.Add(at))
		if d.Allowed {
			res.Admitted[at/accuracyRate.Window]++
		}
	}
	l.settle()
	res.Scripts = scripts.n.Load()
	res.Stats = l.Stats()
	b, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", b)
}
