package store

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"bosun/canary"
)

// Sub-prefixes of the kinds that carry configuration and batch work,
// usable with Changes.
const (
	ConfigMapsPrefix = "configmaps/"
	SecretsPrefix    = "secrets/"
	NamespacesPrefix = "namespaces/"
	JobsPrefix       = "jobs/"
	CronJobsPrefix   = "cronjobs/"
	// CanariesPrefix holds the state of each Deployment's canary
	// (canary.State), written by the leader only.
	CanariesPrefix = "canaries/"
	// The other workload controllers, the claims of local volumes, and
	// what the ingress proxy serves.
	DaemonSetsPrefix     = "daemonsets/"
	StatefulSetsPrefix   = "statefulsets/"
	ClaimsPrefix         = "persistentvolumeclaims/"
	IngressesPrefix      = "ingresses/"
	IngressClassesPrefix = "ingressclasses/"
)

// DaemonSetKey is the etcd key of a DaemonSet.
func DaemonSetKey(namespace, name string) string {
	return Prefix + DaemonSetsPrefix + nsName(namespace, name)
}

// StatefulSetKey is the etcd key of a StatefulSet.
func StatefulSetKey(namespace, name string) string {
	return Prefix + StatefulSetsPrefix + nsName(namespace, name)
}

// ClaimKey is the etcd key of a PersistentVolumeClaim.
func ClaimKey(namespace, name string) string { return Prefix + ClaimsPrefix + nsName(namespace, name) }

// IngressKey is the etcd key of an Ingress.
func IngressKey(namespace, name string) string {
	return Prefix + IngressesPrefix + nsName(namespace, name)
}

// IngressClassKey is the etcd key of an IngressClass (cluster-scoped).
func IngressClassKey(name string) string { return Prefix + IngressClassesPrefix + name }

// PutDaemonSet stores a DaemonSet with its status.
func PutDaemonSet(ds *appsv1.DaemonSet) (Op, error) {
	return putOp(DaemonSetKey(ds.Namespace, ds.Name), ds)
}

// DeleteDaemonSet deletes a DaemonSet.
func DeleteDaemonSet(namespace, name string) Op { return Op{key: DaemonSetKey(namespace, name)} }

// PutStatefulSet stores a StatefulSet with its status.
func PutStatefulSet(sts *appsv1.StatefulSet) (Op, error) {
	return putOp(StatefulSetKey(sts.Namespace, sts.Name), sts)
}

// DeleteStatefulSet deletes a StatefulSet.
func DeleteStatefulSet(namespace, name string) Op { return Op{key: StatefulSetKey(namespace, name)} }

// PutClaim stores a PersistentVolumeClaim with its status.
func PutClaim(c *corev1.PersistentVolumeClaim) (Op, error) {
	return putOp(ClaimKey(c.Namespace, c.Name), c)
}

// DeleteClaim deletes a PersistentVolumeClaim (its data stays or goes by
// its reclaim policy: the node that holds it decides).
func DeleteClaim(namespace, name string) Op { return Op{key: ClaimKey(namespace, name)} }

// PutIngress stores an Ingress.
func PutIngress(ing *networkingv1.Ingress) (Op, error) {
	return putOp(IngressKey(ing.Namespace, ing.Name), ing)
}

// DeleteIngress deletes an Ingress.
func DeleteIngress(namespace, name string) Op { return Op{key: IngressKey(namespace, name)} }

// PutIngressClass stores an IngressClass.
func PutIngressClass(c *networkingv1.IngressClass) (Op, error) {
	return putOp(IngressClassKey(c.Name), c)
}

// DeleteIngressClass deletes an IngressClass.
func DeleteIngressClass(name string) Op { return Op{key: IngressClassKey(name)} }

// ConfigMapKey is the etcd key of a ConfigMap.
func ConfigMapKey(namespace, name string) string {
	return Prefix + ConfigMapsPrefix + nsName(namespace, name)
}

// SecretKey is the etcd key of a Secret.
func SecretKey(namespace, name string) string {
	return Prefix + SecretsPrefix + nsName(namespace, name)
}

// NamespaceKey is the etcd key of a Namespace declared in Git.
func NamespaceKey(name string) string { return Prefix + NamespacesPrefix + name }

// JobKey is the etcd key of a Job.
func JobKey(namespace, name string) string { return Prefix + JobsPrefix + nsName(namespace, name) }

// CronJobKey is the etcd key of a CronJob.
func CronJobKey(namespace, name string) string {
	return Prefix + CronJobsPrefix + nsName(namespace, name)
}

// CanaryKey is the etcd key of a Deployment's canary.
func CanaryKey(namespace, name string) string {
	return Prefix + CanariesPrefix + nsName(namespace, name)
}

// PutCanary writes a canary's state.
func PutCanary(c *canary.State) (Op, error) { return putOp(CanaryKey(c.Namespace, c.Name), c) }

// DeleteCanary deletes a canary's state.
func DeleteCanary(namespace, name string) Op { return Op{key: CanaryKey(namespace, name)} }

// PutConfigMap writes a ConfigMap.
func PutConfigMap(cm *corev1.ConfigMap) (Op, error) {
	return putOp(ConfigMapKey(cm.Namespace, cm.Name), cm)
}

// DeleteConfigMap deletes a ConfigMap.
func DeleteConfigMap(namespace, name string) Op { return Op{key: ConfigMapKey(namespace, name)} }

// PutSecret writes a Secret.
func PutSecret(s *corev1.Secret) (Op, error) { return putOp(SecretKey(s.Namespace, s.Name), s) }

// DeleteSecret deletes a Secret.
func DeleteSecret(namespace, name string) Op { return Op{key: SecretKey(namespace, name)} }

// PutNamespace writes a Namespace.
func PutNamespace(ns *corev1.Namespace) (Op, error) { return putOp(NamespaceKey(ns.Name), ns) }

// DeleteNamespace deletes a Namespace.
func DeleteNamespace(name string) Op { return Op{key: NamespaceKey(name)} }

// PutJob writes a Job with its status.
func PutJob(j *batchv1.Job) (Op, error) { return putOp(JobKey(j.Namespace, j.Name), j) }

// DeleteJob deletes a Job.
func DeleteJob(namespace, name string) Op { return Op{key: JobKey(namespace, name)} }

// PutCronJob writes a CronJob with its status.
func PutCronJob(cj *batchv1.CronJob) (Op, error) {
	return putOp(CronJobKey(cj.Namespace, cj.Name), cj)
}

// DeleteCronJob deletes a CronJob.
func DeleteCronJob(namespace, name string) Op { return Op{key: CronJobKey(namespace, name)} }

// ConfigMap reads one ConfigMap; nil (and no error) when there is none.
func (s *Store) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	ok, err := s.get(ctx, ConfigMapKey(namespace, name), &cm)
	if !ok || err != nil {
		return nil, err
	}
	return &cm, nil
}

// Secret reads one Secret; nil (and no error) when there is none. Its
// values must never reach a log, a status or an error.
func (s *Store) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var sec corev1.Secret
	ok, err := s.get(ctx, SecretKey(namespace, name), &sec)
	if !ok || err != nil {
		return nil, err
	}
	return &sec, nil
}

// get reads and decodes one key, reporting whether it exists. Errors name
// the key, never the value.
func (s *Store) get(ctx context.Context, key string, out any) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	value, err := s.open(key, resp.Kvs[0].Value)
	if err != nil {
		return false, fmt.Errorf("read %w", err)
	}
	if err := json.Unmarshal(value, out); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}
