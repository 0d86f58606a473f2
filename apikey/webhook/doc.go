// Package webhook sends signed webhooks to endpoints that tenants register,
// and verifies them on the receiving side, following the Standard Webhooks
// specification (https://www.standardwebhooks.com). It is the part of
// event delivery that touches the network: the durable event store and the
// delivery loop call it, one attempt at a time.
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
// replays. The event id is the same for every attempt: delivery is at
// least once, and a receiver drops an id it has already seen.
//
// # Outbound requests
//
// Endpoint URLs are chosen by tenants, so every request is treated as an
// attempt to reach what the service can reach and the tenant cannot
// (server-side request forgery). A Policy decides; its zero value is
// strict:
//
//   - Policy.ParseEndpoint checks a URL when it is registered: https only
//     (http with AllowHTTP), a host, no userinfo or fragment, at most
//     MaxURLLength bytes, an IP literal only if admitted, never localhost
//     or a number that resolvers read as an IPv4 address (127.1,
//     2130706433). Errors name the part refused.
//   - Every connection is checked on the address it connects to, after name
//     resolution (net.Dialer.ControlContext), against ForbiddenRanges:
//     loopback, private (RFC 1918, unique local fc00::/7), link-local
//     (169.254.0.0/16 and fe80::/10, where cloud metadata answers:
//     169.254.169.254, fd00:ec2::254), shared CGNAT space, unspecified,
//     multicast, broadcast, documentation and reserved ranges, and the same
//     addresses inside IPv4-mapped, IPv4-translated, NAT64 and 6to4 IPv6
//     addresses. A name that resolved to a public address when it was
//     registered and to a private one later (DNS rebinding) is refused
//     when dialed. Policy.Allow admits named ranges and AllowInternal
//     every address (development only); Policy.Ports restricts ports.
//   - Redirects are not followed: a 3xx is a failed attempt. An attempt is
//     bounded in time (Options.Timeout, 15 s) from dial to last byte, and
//     at most Options.MaxResponseBody (64 KiB) of the response is read.
//     No proxy is taken from the environment; a proxy the service passes
//     must itself be admitted, and then applies its own rules.
//
// # Outcomes and retries
//
// Each Attempt has an Outcome (Classify): Delivered (2xx), Retry (5xx,
// 408, 429, timeouts, connection errors), Failed (3xx, other 4xx, a
// refused address) or Gone (410: disable the endpoint). RetryPolicy.Decide
// turns it into the next step: done, retry after a wait drawn with full
// jitter below the schedule's ceiling (DefaultSchedule: 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h, 10 h), dead-letter after the last attempt, or
// disable the endpoint.
package webhook
