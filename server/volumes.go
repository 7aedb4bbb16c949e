package server

import (
	"context"

	"bosun/reconciler"
	"bosun/store"
)

// observeVolumes reads the nodes' records of their local volumes for the
// planner: retained volumes a claim that comes back binds to, and the
// capacity volumes take on their node. (Read from etcd on each pass: the
// records are few, one per claim; the cache does not carry them yet.)
func observeVolumes(ctx context.Context, st *store.Store) ([]reconciler.Volume, error) {
	recs, err := st.Volumes(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]reconciler.Volume, 0, len(recs))
	for _, r := range recs {
		out = append(out, reconciler.Volume{Node: r.Node, Namespace: r.Namespace, Claim: r.Claim, VolumeName: r.VolumeName,
			Size: r.Size, Released: r.State == store.VolumeReleased, ReclaimDelete: r.ReclaimPolicy == "Delete"})
	}
	return out, nil
}
