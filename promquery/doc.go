// Package promquery asks a Prometheus server for one number: the value of a
// PromQL expression at an instant, as a canary's metric gate needs it
// (bosun.dev/canary-query with canary-max / canary-min).
//
// A Client is made from the server's base URL (http://host:9090, optionally
// with a path prefix, and user:password for basic auth) and a timeout that
// bounds each query, on the client and on the server. Client.Scalar runs an
// instant query through the Prometheus HTTP API (client_golang's api/v1)
// and returns exactly one number: a scalar, or an instant vector with
// exactly one sample. Anything else is an error written to be shown to a
// user as it is, since it ends up in a canary's status:
//
//	query returned no data                                  (errors.Is ErrNoData)
//	query returned 3 series; it must return one number (use sum(...))
//	query returned NaN (0/0: nothing in the window?)        (errors.Is ErrNotANumber)
//	prometheus http://127.0.0.1:9090: bad_data: 1:5: parse error: ...
//	prometheus http://127.0.0.1:9090: dial tcp 127.0.0.1:9090: connect: connection refused
//
// Errors name the server by scheme, host and path only: credentials in the
// base URL are used and never printed. When Prometheus answers with
// warnings (the answer may be incomplete, for example a remote read
// failed), Scalar returns the number together with a *WarningsError: a
// gate that must not pass on partial data treats it as any error; a caller
// that accepts it reads the number.
//
// The package does I/O only; the decision what a number means belongs to
// the caller. promtest runs Debian's prometheus binary for tests.
package promquery
