//go:build race

package nodes

import "github.com/sasha-s/go-deadlock"

// Under -race, go-cni guards its state with go-deadlock instead of
// sync.RWMutex. go-deadlock identifies goroutines with petermattis/goid,
// which reports 0 for every goroutine on current Go, so two pod workers
// holding the read lock at once look like recursive locking and it kills
// the process. Its detection is off; the race detector still runs.
func init() { deadlock.Opts.Disable = true }
