package store

import (
	"sync"

	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// snapIndex is a snapshot's pod indexes, built on first use: most readers
// of a snapshot never need them.
type snapIndex struct {
	once    sync.Once
	byName  map[string]int   // namespace/name -> index in Pods
	byNode  map[string][]int // node ("" unbound) -> indexes in Pods
	byOwner map[string][]int // OwnerOf -> indexes in Pods
}

func newSnapshot() *Snapshot { return &Snapshot{index: &snapIndex{}} }

func (s *Snapshot) podIndex() *snapIndex {
	ix := s.index
	if ix == nil { // a Snapshot built by hand: index it each time
		ix = &snapIndex{}
	}
	ix.once.Do(func() {
		ix.byName = make(map[string]int, len(s.Pods))
		ix.byNode = map[string][]int{}
		ix.byOwner = map[string][]int{}
		for i, p := range s.Pods {
			ix.byName[nsName(p.Namespace, p.Name)] = i
			ix.byNode[p.Spec.NodeName] = append(ix.byNode[p.Spec.NodeName], i)
			if o := kube.OwnerOf(p); o != "" {
				ix.byOwner[o] = append(ix.byOwner[o], i)
			}
		}
	})
	return ix
}

// Pod returns the pod of that name, or nil. It is shared: read only.
func (s *Snapshot) Pod(namespace, name string) *corev1.Pod {
	if i, ok := s.podIndex().byName[nsName(namespace, name)]; ok {
		return s.Pods[i]
	}
	return nil
}

// PodsOnNode returns the pods bound to node ("" for unbound ones), in the
// order of Pods. They are shared: read only.
func (s *Snapshot) PodsOnNode(node string) []*corev1.Pod { return s.pick(s.podIndex().byNode[node]) }

// PodsOwnedBy returns the pods whose controller is owner
// ("Kind/namespace/name", see kube.OwnerOf), in the order of Pods. They are
// shared: read only.
func (s *Snapshot) PodsOwnedBy(owner string) []*corev1.Pod {
	return s.pick(s.podIndex().byOwner[owner])
}

func (s *Snapshot) pick(idx []int) []*corev1.Pod {
	out := make([]*corev1.Pod, len(idx))
	for i, j := range idx {
		out[i] = s.Pods[j]
	}
	return out
}
