package proxy

// TEMPORARY (H1b): H1a's API (Open, Sync, Close, Cleanup), stubbed so that
// the runner compiles until the rule engine is on main. Deleted when main
// is merged.

import (
	"errors"
	"log/slog"

	"github.com/vishvananda/netns"
)

type Config struct {
	Table  string
	NetNS  netns.NsHandle
	Logger *slog.Logger
}

type Table struct{}

type SyncStats struct {
	Full                    bool
	Added, Changed, Removed int
	ConntrackFlushed        int
}

func Open(cfg Config) (*Table, error) { return nil, errors.New("no rule engine yet") }

func (t *Table) Sync(ports []ServicePort) (SyncStats, error) { return SyncStats{}, nil }

func (t *Table) Close() error { return nil }

func Cleanup(cfg Config) error { return nil }

const DefaultTable = "bosun"
