// Package webhook sends signed webhooks to endpoints that tenants register,
// and verifies them on the receiving side, following the Standard Webhooks
// specification (https://www.standardwebhooks.com).
//
// # Signing
//
// A Message (event id, timestamp, body) is signed with HMAC-SHA256 over
// "id.timestamp.body" under each of the endpoint's Secrets; Sign sets the
// webhook-id, webhook-timestamp and webhook-signature headers
// ("v1,<base64>", space-separated while a secret is rotated). Secrets read
// and print in the "whsec_<base64>" form of the specification, are made by
// GenerateSecret from crypto/rand, and never appear in any printing, log or
// error. A receiver checks a request with a Verifier: a constant-time
// comparison, and a timestamp within a tolerance (5 minutes) to refuse
// replays.
package webhook
