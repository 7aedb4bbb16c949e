package ipalloc

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkAllocate10kServices: the leader's cost of accepting a revision
// of 10,000 Services (1 in 10 NodePort), all new, then the same revision
// again with every address kept (the common case: an unrelated commit).
//
//	go test ./ipalloc -run XXX -bench Allocate -benchmem
func BenchmarkAllocate10kServices(b *testing.B) {
	desired := make([]corev1.Service, 10000)
	for i := range desired {
		opts := []string{"port=http/80/TCP"}
		if i%10 == 0 {
			opts = append(opts, "type=NodePort")
		}
		desired[i] = svc(fmt.Sprintf("ns%d", i%50), fmt.Sprintf("svc-%d", i), opts...)
	}
	given, errs := Allocate(Config{}, desired)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			Allocate(Config{}, desired)
		}
	})
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			Allocate(Config{}, desired, given)
		}
	})
}
