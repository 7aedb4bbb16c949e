package nodes

import (
	"slices"
	"testing"

	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
	"bosun/store"
)

func TestDecideVolume(t *testing.T) {
	claim := func(node, volume, policy string) *corev1.PersistentVolumeClaim {
		c := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data", Annotations: map[string]string{kube.AnnotationSelectedNode: node}},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: volume,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}
		if policy != "" {
			c.Annotations[kube.AnnotationReclaimPolicy] = policy
		}
		return c
	}
	rec := func(policy, state string) store.VolumeRecord {
		return store.VolumeRecord{Node: "n1", Namespace: "default", Claim: "data", VolumeName: "pvc-1", Size: 1 << 30,
			ReclaimPolicy: policy, State: state, Path: "/d/volumes/default/data-1", Made: true}
	}
	with := func(r store.VolumeRecord, f func(*store.VolumeRecord)) store.VolumeRecord { f(&r); return r }
	for _, tc := range []struct {
		name   string
		rec    store.VolumeRecord
		claim  *corev1.PersistentVolumeClaim
		inUse  bool
		want   volumeDecision
		wantTo store.VolumeRecord // for volumeUpdate
	}{
		{name: "bound, as recorded", rec: rec("Retain", store.VolumeBound), claim: claim("n1", "pvc-1", ""), want: volumeKeep},
		{name: "bound, policy now Delete", rec: rec("Retain", store.VolumeBound), claim: claim("n1", "pvc-1", "Delete"),
			want: volumeUpdate, wantTo: rec("Delete", store.VolumeBound)},
		{name: "bound, policy now Retain", rec: rec("Delete", store.VolumeBound), claim: claim("n1", "pvc-1", "Retain"),
			want: volumeUpdate, wantTo: rec("Retain", store.VolumeBound)},
		{name: "released again bound", rec: rec("Retain", store.VolumeReleased), claim: claim("n1", "pvc-1", ""),
			want: volumeUpdate, wantTo: rec("Retain", store.VolumeBound)},
		{name: "not made yet: stays so", rec: with(rec("Retain", store.VolumeBound), func(r *store.VolumeRecord) { r.Made = false }),
			claim: claim("n1", "pvc-1", ""), want: volumeKeep},
		{name: "claim gone, Retain: released", rec: rec("Retain", store.VolumeBound), want: volumeUpdate, wantTo: rec("Retain", store.VolumeReleased)},
		{name: "claim gone, Retain, released already", rec: rec("Retain", store.VolumeReleased), want: volumeKeep},
		{name: "claim gone, Delete: deleted", rec: rec("Delete", store.VolumeBound), want: volumeDelete},
		{name: "claim gone, Delete, in use: waits", rec: rec("Delete", store.VolumeBound), inUse: true, want: volumeInUseWait},
		{name: "claim on another volume, Delete: deleted", rec: rec("Delete", store.VolumeBound), claim: claim("n1", "pvc-2", "Delete"), want: volumeDelete},
		{name: "claim moved to another node, Retain: released", rec: rec("Retain", store.VolumeBound), claim: claim("n2", "pvc-1", ""),
			want: volumeUpdate, wantTo: rec("Retain", store.VolumeReleased)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next := decideVolume(tc.rec, tc.claim, "n1", tc.inUse)
			if got != tc.want {
				t.Fatalf("decision %d, want %d", got, tc.want)
			}
			if got == volumeUpdate && next != tc.wantTo {
				t.Errorf("record %+v, want %+v", next, tc.wantTo)
			}
		})
	}
}

func TestMountsOf(t *testing.T) {
	dev := func(mp, root string, minor int) *mountinfo.Info {
		return &mountinfo.Info{Mountpoint: mp, Root: root, Major: 8, Minor: minor}
	}
	ms := []*mountinfo.Info{
		dev("/", "/", 1),
		dev("/var/lib/bosun", "/", 2), // the data disk
		dev("/var/lib/bosun/pods/u1/volumes/data", "/volumes/default/data-1", 2),                   // a pod's bind mount
		dev("/var/lib/bosun/pods/u2/volume-subpaths/data/app/0", "/volumes/default/data-1/sub", 2), // a subPath of it
		dev("/var/lib/bosun/pods/u3/volumes/data", "/volumes/default/data-10", 2),                  // another volume
		dev("/var/lib/bosun/volumes/default/data-1/mnt", "/", 3),                                   // below the dir: removeTree's
		dev("/mnt/other", "/volumes/default/data-1", 1),                                            // same path, another device
	}
	got := mountsOf("/var/lib/bosun/volumes/default/data-1", ms)
	want := []string{"/var/lib/bosun/pods/u1/volumes/data", "/var/lib/bosun/pods/u2/volume-subpaths/data/app/0"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsOf = %q, want %q", got, want)
	}
	if got := mountsOf("/var/lib/bosun/volumes/default/data-2", ms); len(got) != 0 {
		t.Errorf("an unused volume: %q", got)
	}
	// The data dir on the root filesystem, bind-mounted from elsewhere.
	ms = []*mountinfo.Info{dev("/", "/", 1), dev("/data", "/srv/bosun", 1), dev("/data/pods/u1/volumes/data", "/srv/bosun/volumes/ns/c-1", 1)}
	if got := mountsOf("/data/volumes/ns/c-1", ms); !slices.Equal(got, []string{"/data/pods/u1/volumes/data"}) {
		t.Errorf("through a bind-mounted data dir: %q", got)
	}
}
