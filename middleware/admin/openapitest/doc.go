// Package openapitest checks the management API (package admin) against
// its OpenAPI 3.1 document with a real OpenAPI validator,
// github.com/pb33f/libopenapi-validator: the document against the OpenAPI
// 3.1 specification, then every request and response of the route table
// (internal/admintest) and of the refusals that need another setup (storage
// down, no audit log, the key middleware in front), and that the table
// exercises every operation of the document. It is a module of its own so
// that the library module gains no dependency; it holds tests only.
package openapitest
