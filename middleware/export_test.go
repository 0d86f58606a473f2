package middleware_test

import "github.com/keystile/keystile/storage"

type storageChanged = storage.Changed

var storageErrFeedGap = storage.ErrFeedGap
