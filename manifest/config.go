package manifest

import (
	"encoding/json"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxConfigSize is the most data one ConfigMap or Secret may hold, as in
// Kubernetes (etcd's value limit with room to spare).
const maxConfigSize = 1 << 20

// Secret types bosun refuses: it has no service accounts and no bootstrap
// tokens to go with them.
var refusedSecretTypes = map[corev1.SecretType]string{
	corev1.SecretTypeServiceAccountToken: "bosun has no service accounts",
	corev1.SecretTypeBootstrapToken:      "bosun has no bootstrap tokens",
}

func defaultConfigMap(cm *corev1.ConfigMap) {
	if cm.Namespace == "" {
		cm.Namespace = DefaultNamespace
	}
}

func validateConfigMap(cm *corev1.ConfigMap) problems {
	var ps problems
	validateObjectMeta(&cm.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, &ps)
	size := validateKeys(cm.Data, field.NewPath("data"), nil, &ps)
	size += validateKeys(cm.BinaryData, field.NewPath("binaryData"), cm.Data, &ps)
	if size > maxConfigSize {
		ps.add(field.NewPath("data"), "holds %d bytes, more than the %d a ConfigMap may hold", size, maxConfigSize)
	}
	return ps
}

func defaultSecret(s *corev1.Secret) {
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
}

// validateSecret checks a Secret as Kubernetes does, in messages that name
// keys and never values.
func validateSecret(s *corev1.Secret) problems {
	var ps problems
	validateObjectMeta(&s.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, &ps)
	size := validateKeys(s.Data, field.NewPath("data"), nil, &ps)
	size += validateKeys(s.StringData, field.NewPath("stringData"), nil, &ps)
	if size > maxConfigSize {
		ps.add(field.NewPath("data"), "holds %d bytes, more than the %d a Secret may hold", size, maxConfigSize)
	}
	has := func(key string) bool {
		_, inData := s.Data[key]
		_, inString := s.StringData[key]
		return inData || inString
	}
	typ := field.NewPath("type")
	if why, refused := refusedSecretTypes[s.Type]; refused {
		ps.add(typ, "unsupported value %q: %s", s.Type, why)
	}
	required := map[corev1.SecretType][]string{
		corev1.SecretTypeTLS:              {corev1.TLSCertKey, corev1.TLSPrivateKeyKey},
		corev1.SecretTypeSSHAuth:          {corev1.SSHAuthPrivateKey},
		corev1.SecretTypeDockerConfigJson: {corev1.DockerConfigJsonKey},
		corev1.SecretTypeDockercfg:        {corev1.DockerConfigKey},
	}[s.Type]
	for _, key := range required {
		if !has(key) {
			ps.add(typ, "a Secret of type %s needs the key %q", s.Type, key)
		}
	}
	if s.Type == corev1.SecretTypeBasicAuth && !has(corev1.BasicAuthUsernameKey) && !has(corev1.BasicAuthPasswordKey) {
		ps.add(typ, "a Secret of type %s needs the key %q or %q", s.Type, corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey)
	}
	for _, key := range []string{corev1.DockerConfigJsonKey, corev1.DockerConfigKey} {
		if (s.Type == corev1.SecretTypeDockerConfigJson || s.Type == corev1.SecretTypeDockercfg) && has(key) {
			v, ok := s.Data[key]
			if sv, inString := s.StringData[key]; inString {
				v, ok = []byte(sv), true
			}
			if ok && !json.Valid(v) {
				// The decoder's own message would quote the value.
				ps.add(field.NewPath("data").Key(key), "must be valid JSON")
			}
		}
	}
	return ps
}

// mergeStringData folds stringData into data, as the API server does on
// write (stringData wins); the stored Secret has data only.
func mergeStringData(s *corev1.Secret) {
	if len(s.StringData) == 0 {
		s.StringData = nil
		return
	}
	if s.Data == nil {
		s.Data = make(map[string][]byte, len(s.StringData))
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

// validateKeys checks the keys of a data map (valid file names, not in
// other too) and returns the size of its values.
func validateKeys[V string | []byte](data map[string]V, path *field.Path, other map[string]string, ps *problems) int {
	size := 0
	for _, k := range slices.Sorted(maps.Keys(data)) {
		size += len(data[k])
		if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
			ps.add(path.Key(k), "invalid key %q: must consist of letters, digits, '-', '_' or '.' (not \".\" or \"..\")", k)
			continue
		}
		if _, dup := other[k]; dup {
			ps.add(path.Key(k), "duplicate key %q: it is in data too", k)
		}
	}
	return size
}

func defaultNamespace(*corev1.Namespace) {}

func validateNamespace(ns *corev1.Namespace) problems {
	var ps problems
	if ns.Namespace != "" {
		ps.add(field.NewPath("metadata", "namespace"), "must be empty: a Namespace is not in a namespace")
	}
	meta := ns.ObjectMeta
	meta.Namespace = ""
	validateObjectMeta(&meta, validation.IsDNS1123Label, labelRule, &ps)
	return ps
}
