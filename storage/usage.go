package storage

import "github.com/keystile/keystile/apikey"

// UsageRecorder is an optional Store capability that adds up the requests of
// each key per hour and outcome, written in batches; see apikey.UsageRecorder.
type UsageRecorder = apikey.UsageRecorder

// UsageCount is the number of requests of one key in one hour with one
// outcome; see apikey.UsageCount.
type UsageCount = apikey.UsageCount

// UsageQuery selects usage counts; see apikey.UsageQuery.
type UsageQuery = apikey.UsageQuery

// CallerLog is an optional Store capability that keeps, per key rotated
// out, the distinct callers still using it, written in batches; see
// apikey.CallerLog.
type CallerLog = apikey.CallerLog

// KeyCallers are the callers of one key; see apikey.KeyCallers.
type KeyCallers = apikey.KeyCallers

// Caller is one client of a key; see apikey.Caller.
type Caller = apikey.Caller

// InstanceLog is an optional Store capability that keeps, per running
// validator, the change-feed revision it has applied; see
// apikey.InstanceLog.
type InstanceLog = apikey.InstanceLog

// Instance is one running validator; see apikey.Instance.
type Instance = apikey.Instance
