package gitsource

import "time"

// maxBackoff caps the wait between retries of a failing fetch.
const maxBackoff = 5 * time.Minute

// backoff returns how long to wait before the next fetch, given the poll
// interval and the number of consecutive failed fetches so far. With no
// failures it is poll; after n failures it is poll·2^(n-1), capped at
// maxBackoff (or at poll itself when poll is longer than that, so failing
// never makes polling more frequent).
func backoff(poll time.Duration, failures int) time.Duration {
	limit := max(maxBackoff, poll)
	d := poll
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
