package middleware

import (
	"context"
	"fmt"
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
	if err := v.recorder.RecordLastUsed(ctx, used); err != nil {
		v.cache.restoreUsed(used)
		return fmt.Errorf("middleware: recording last-used times: %w", err)
	}
	return nil
}
