package dns

import corev1 "k8s.io/api/core/v1"

// podPointers adapts the tests' pod lists to BuildIndex (i7-ptr: the
// store's pods are shared pointers).
func podPointers(pods []corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, len(pods))
	for i := range pods {
		out[i] = &pods[i]
	}
	return out
}
