package store

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
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

// One record that does not decode is left out, said, and does not hide
// the others; a record's node is its key's, whatever it says.
func TestVolumeList_skipsUndecodableRecordsAndTakesTheNodeFromTheKey(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	good := VolumeRecord{Node: "n1", Namespace: "default", Claim: "data", VolumeName: "pvc-1", Size: 1, ReclaimPolicy: "Retain", State: VolumeBound}
	if err := s.PutVolume(ctx, good); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Put(ctx, VolumeKey("n1", "default", "pvc-0"), "{not json"); err != nil {
		t.Fatal(err)
	}
	// n2 writes, under its own key, a record that names n1.
	liar := good
	liar.VolumeName = "pvc-2"
	b, _ := json.Marshal(liar)
	if _, err := s.cli.Put(ctx, VolumeKey("n2", "default", "pvc-2"), string(b)); err != nil {
		t.Fatal(err)
	}
	l, err := s.VolumeList(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Records) != 2 || l.Records[0] != good || l.Records[1].Node != "n2" || l.Records[1].VolumeName != "pvc-2" {
		t.Errorf("records %+v", l.Records)
	}
	if len(l.Skipped) != 1 || !strings.Contains(l.Skipped[0].Error(), "volumes/n1/default/pvc-0") {
		t.Errorf("skipped %v", l.Skipped)
	}
	if recs, err := s.Volumes(ctx, "n1"); err != nil || len(recs) != 1 {
		t.Errorf("Volumes(n1) = %+v, %v", recs, err)
	}
}
