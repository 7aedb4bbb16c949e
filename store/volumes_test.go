package store

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// A volume record is written only while its claim is as read: not after
// the claim changed (its policy may have) nor after it was deleted; with
// revision 0, only while there is no claim.
func TestPutVolumeIfClaim_writesOnlyWhileTheClaimIsAsRead(t *testing.T) {
	s := NewTest(t)
	ctx := context.Background()
	putClaim := func(policy string) {
		t.Helper()
		c := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data", UID: "u1",
			Annotations: map[string]string{"bosun.dev/reclaim-policy": policy}}}
		b, _ := json.Marshal(c)
		if _, err := s.cli.Put(ctx, ClaimKey("default", "data"), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	rec := VolumeRecord{Node: "n1", Namespace: "default", Claim: "data", VolumeName: "pvc-u1", Size: 1, ReclaimPolicy: "Delete", State: VolumeBound}
	read := func(want string) *VolumeRecord {
		t.Helper()
		got, err := s.Volume(ctx, "n1", "default", "pvc-u1")
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (want == "") || got != nil && got.ReclaimPolicy != want {
			t.Fatalf("record %+v, want policy %q", got, want)
		}
		return got
	}

	if c, rev, err := s.ClaimRevision(ctx, "default", "data"); c != nil || rev != 0 || err != nil {
		t.Fatalf("no claim: %v, %d, %v", c, rev, err)
	}
	putClaim("Delete")
	c, rev, err := s.ClaimRevision(ctx, "default", "data")
	if err != nil || c == nil || c.UID != "u1" || rev == 0 {
		t.Fatalf("claim: %v, %d, %v", c, rev, err)
	}
	if ok, err := s.PutVolumeIfClaim(ctx, rec, 0); ok || err != nil {
		t.Fatalf("written while the claim exists, with revision 0: %v, %v", ok, err)
	}
	if ok, err := s.PutVolumeIfClaim(ctx, rec, rev); !ok || err != nil {
		t.Fatalf("not written with the claim as read: %v, %v", ok, err)
	}
	read("Delete")

	// The claim says Retain now, and the record does (the agent's
	// collection); a worker that read it when it said Delete writes nothing.
	putClaim("Retain")
	retain := rec
	retain.ReclaimPolicy = "Retain"
	if err := s.PutVolume(ctx, retain); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.PutVolumeIfClaim(ctx, rec, rev); ok || err != nil {
		t.Fatalf("written from a claim that changed: %v, %v", ok, err)
	}
	read("Retain")
	// Nor once the claim is deleted.
	if _, err := s.cli.Delete(ctx, ClaimKey("default", "data")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.PutVolumeIfClaim(ctx, rec, rev); ok || err != nil {
		t.Fatalf("written from a claim that was deleted: %v, %v", ok, err)
	}
	read("Retain")
	// With revision 0: while there is none.
	released := retain
	released.State = VolumeReleased
	if ok, err := s.PutVolumeIfClaim(ctx, released, 0); !ok || err != nil {
		t.Fatalf("not written with no claim, revision 0: %v, %v", ok, err)
	}
	if got := read("Retain"); got.State != VolumeReleased {
		t.Errorf("record %+v", got)
	}
}
