package middleware

import (
	"context"
	"fmt"
	"time"
)

// flushLastUsed writes the last-used times gathered since the previous
// flush, one entry per key, through storage.LastUsedRecorder. Times that
// cannot be written are kept for the next flush.
func (v *Validator) flushLastUsed(ctx context.Context) error {
	if v.recorder == nil {
		return nil
	}
	used := v.cache.takeUsed()
	if len(used) == 0 {
		return nil
	}
	if err := v.recordLastUsed(ctx, used); err != nil {
		v.cache.restoreUsed(used)
		return fmt.Errorf("middleware: recording last-used times: %w", err)
	}
	return nil
}

// recordLastUsed writes used through the store; a panic of the store
// becomes an error, so that a faulty custom store cannot end the process.
func (v *Validator) recordLastUsed(ctx context.Context, used map[string]time.Time) (err error) {
	defer catchPanic("recording last-used times", &err)
	return v.recorder.RecordLastUsed(ctx, used)
}
