package server

import (
	"context"
	"log/slog"

	"bosun/reconciler"
	"bosun/store"
)

// observeVolumes reads the nodes' records of their local volumes for the
// planner: retained volumes a claim that comes back binds to, and the
// capacity volumes take on their node. (Read from etcd on each pass: the
// records are few, one per claim; the cache does not carry them yet.) A
// record's node is the one its key names (store.VolumeList). A record
// that does not decode is left out and logged (with how many were), so
// one bad record does not stop every plan.
func observeVolumes(ctx context.Context, st *store.Store, log *slog.Logger) ([]reconciler.Volume, error) {
	l, err := st.VolumeList(ctx, "")
	if err != nil {
		return nil, err
	}
	if log != nil {
		for _, e := range l.Skipped {
			log.Warn("volume record skipped", "err", e, "skipped", len(l.Skipped))
		}
	}
	out := make([]reconciler.Volume, 0, len(l.Records))
	for _, r := range l.Records {
		out = append(out, reconciler.Volume{Node: r.Node, Namespace: r.Namespace, Claim: r.Claim, VolumeName: r.VolumeName,
			Size: r.Size, Released: r.State == store.VolumeReleased, ReclaimDelete: r.ReclaimPolicy == "Delete"})
	}
	return out, nil
}
