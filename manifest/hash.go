package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// TemplateHash returns a short, stable hash of a pod template: the first 10
// hex digits of the SHA-256 of its JSON encoding (struct fields in declaration
// order, map keys sorted, so equal templates always hash alike). It is used as
// the pod-template-hash label. Templates from a Set are hashed after defaults
// are applied, so a template written with and without its defaults hashes
// the same.
func TemplateHash(spec *corev1.PodTemplateSpec) string {
	// Marshalling API types cannot fail: they hold no channels, funcs or
	// cyclic pointers, and their custom marshallers do not return errors.
	data, _ := json.Marshal(spec)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:10]
}
