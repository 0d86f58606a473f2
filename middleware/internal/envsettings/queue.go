package envsettings

import "sync"

// MaxPending bounds the environments waiting for a reload; beyond it a full
// load is due instead.
const MaxPending = 1024

// queue holds the environments waiting for a reload, and whether a full
// load is due. Adding never blocks; each addition signals ready (capacity
// one, so that signals coalesce).
type queue struct {
	mu    sync.Mutex
	envs  map[key]struct{}
	full  bool
	ready chan struct{}
}

func newQueue() *queue {
	return &queue{envs: map[key]struct{}{}, ready: make(chan struct{}, 1)}
}

// add queues one environment; at MaxPending it asks for a full load.
func (q *queue) add(k key) {
	q.mu.Lock()
	if _, ok := q.envs[k]; !ok && len(q.envs) >= MaxPending {
		q.full = true
	} else {
		q.envs[k] = struct{}{}
	}
	q.mu.Unlock()
	q.signal()
}

// addFull asks for a full load.
func (q *queue) addFull() {
	q.mu.Lock()
	q.full = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns and forgets what is queued.
func (q *queue) take() (envs map[key]struct{}, full bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	envs, full = q.envs, q.full
	q.envs, q.full = map[key]struct{}{}, false
	return envs, full
}

// len returns the number of queued environments and whether a full load is
// due.
func (q *queue) len() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.envs), q.full
}
