package store

import (
	"context"
	"reflect"
	"testing"
)

func TestVolumes_recordsPerNode(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	recs := []VolumeRecord{
		{Node: "n2", Namespace: "default", Claim: "data", VolumeName: "pvc-2", Size: 1 << 30, ReclaimPolicy: "Retain", State: VolumeBound, Path: "/d/volumes/default/data-2"},
		{Node: "n1", Namespace: "web", Claim: "cache", VolumeName: "pvc-1", Size: 5, ReclaimPolicy: "Delete", State: VolumeReleased, Path: "/d/volumes/web/cache-1"},
	}
	for _, r := range recs {
		if err := s.PutVolume(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Volumes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []VolumeRecord{recs[1], recs[0]}; !reflect.DeepEqual(all, want) {
		t.Errorf("all = %+v, want %+v", all, want)
	}
	// "n1" is not a prefix of "n1x"'s records, nor the other way round.
	if err := s.PutVolume(ctx, VolumeRecord{Node: "n1x", Namespace: "default", Claim: "x"}); err != nil {
		t.Fatal(err)
	}
	n1, err := s.Volumes(ctx, "n1")
	if err != nil || len(n1) != 1 || n1[0].Claim != "cache" {
		t.Errorf("n1 = %+v, %v", n1, err)
	}
	if err := s.DeleteVolume(ctx, "n1", "web", "pvc-1"); err != nil {
		t.Fatal(err)
	}
	if n1, _ := s.Volumes(ctx, "n1"); len(n1) != 0 {
		t.Errorf("after delete: %+v", n1)
	}
}
