// Package webhookinterop holds the tests that check package webhook against
// the Standard Webhooks reference library for Go
// (github.com/standard-webhooks/standard-webhooks/libraries/go), which
// lives in this module so that the library's module graph does not gain
// it.
package webhookinterop
