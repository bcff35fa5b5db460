// Package messages holds the wire types of dbworker's NATS protocol: the request
// and answer bodies of every endpoint and the error model. Clients in Go can use
// them directly; clients in other languages follow docs/protocol.md, which these
// types implement.
//
// # Errors
//
// A failed request is answered with the micro error headers and an [ErrorBody]:
//
//	{"error":{"code":"SQL_ERROR","status":409,"message":"...","sqlstate":"23505"}}
//
// [Error] is the Go form; it satisfies the error interface, so a client can use
// errors.As to read the code, status and SQLSTATE. On the worker's side an
// Error also carries its cause (see [Wrap]), which the worker logs and never
// sends.
//
// # Decoding
//
// [DecodeStrict] reads a body the way the worker reads requests and jobs:
// unknown fields, trailing data, invalid UTF-8 and wrong types are BAD_REQUEST.
package messages
