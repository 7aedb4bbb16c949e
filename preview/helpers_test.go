package preview

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"bosun/manifest"
	"bosun/reconciler"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// set decodes YAML documents into a Set, as manifest loading does for a
// repository.
func set(t testing.TB, docs ...string) *manifest.Set {
	t.Helper()
	s, err := manifest.Decode("test.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return s
}

func node(name, cpu, mem string) corev1.Node {
	n := corev1.Node{}
	n.Name = name
	n.Status.Allocatable = corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
	}
	return n
}

// running returns the cluster after bosun applied s on nodes and every pod
// started and became ready: reconciler.Plan's actions applied until it has
// none left, as the driver and the node agents do.
func running(t testing.TB, s *manifest.Set, nodes ...corev1.Node) reconciler.Observed {
	t.Helper()
	o := reconciler.Observed{Nodes: nodes}
	for range 20 {
		actions := reconciler.Plan(s, o, now).Actions
		if len(actions) == 0 {
			return o
		}
		for _, a := range actions {
			o = apply(o, a)
		}
	}
	t.Fatalf("plan does not converge")
	return o
}

func apply(o reconciler.Observed, a reconciler.Action) reconciler.Observed {
	switch a.Type {
	case reconciler.CreatePod, reconciler.UpdatePod:
		p := a.Pod.DeepCopy()
		if p.Spec.NodeName != "" {
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = upsert(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
			p.Status.Conditions = upsert(p.Status.Conditions, corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue})
			p.Status.ContainerStatuses = nil
			for _, c := range p.Spec.Containers {
				started := true
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Ready: true, Started: &started,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
			}
		}
		o.Pods = remove(o.Pods, p.Namespace, p.Name)
		o.Pods = append(o.Pods, p)
	case reconciler.DeletePod:
		o.Pods = remove(o.Pods, a.Namespace, a.Name)
	case reconciler.PutDeployment:
		o.Deployments = append(removeDeployment(o, a.Deployment.Namespace, a.Deployment.Name), *a.Deployment.DeepCopy())
	case reconciler.DeleteDeployment:
		o.Deployments = removeDeployment(o, a.Namespace, a.Name)
	case reconciler.PutService:
		o.Services = append(removeService(o, a.Service.Namespace, a.Service.Name), *a.Service.DeepCopy())
	case reconciler.DeleteService:
		o.Services = removeService(o, a.Namespace, a.Name)
	case reconciler.PutConfigMap:
		o.ConfigMaps = append(removeNamed(o.ConfigMaps, a.ConfigMap.Namespace, a.ConfigMap.Name), *a.ConfigMap.DeepCopy())
	case reconciler.DeleteConfigMap:
		o.ConfigMaps = removeNamed(o.ConfigMaps, a.Namespace, a.Name)
	case reconciler.PutSecret:
		o.Secrets = append(removeNamed(o.Secrets, a.Secret.Namespace, a.Secret.Name), *a.Secret.DeepCopy())
	case reconciler.DeleteSecret:
		o.Secrets = removeNamed(o.Secrets, a.Namespace, a.Name)
	case reconciler.PutNamespace:
		o.Namespaces = append(removeNamed(o.Namespaces, "", a.NamespaceObject.Name), *a.NamespaceObject.DeepCopy())
	case reconciler.DeleteNamespace:
		o.Namespaces = removeNamed(o.Namespaces, "", a.Name)
	default:
		panic(fmt.Sprintf("unknown action %s", a.Type))
	}
	return o
}

func upsert(cs []corev1.PodCondition, c corev1.PodCondition) []corev1.PodCondition {
	for i := range cs {
		if cs[i].Type == c.Type {
			cs[i].Status = c.Status
			return cs
		}
	}
	c.LastTransitionTime.Time = now.Add(-time.Hour)
	return append(cs, c)
}

func remove(pods []*corev1.Pod, ns, name string) []*corev1.Pod {
	out := pods[:0:0]
	for _, p := range pods {
		if p.Namespace != ns || p.Name != name {
			out = append(out, p)
		}
	}
	return out
}

func removeDeployment(o reconciler.Observed, ns, name string) (out []appsv1.Deployment) {
	for _, d := range o.Deployments {
		if d.Namespace != ns || d.Name != name {
			out = append(out, d)
		}
	}
	return out
}

func removeService(o reconciler.Observed, ns, name string) (out []corev1.Service) {
	for _, s := range o.Services {
		if s.Namespace != ns || s.Name != name {
			out = append(out, s)
		}
	}
	return out
}

// deployment is a Deployment manifest with one container.
func deployment(name string, replicas int, image, cpu, mem, strategy string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels:
      app: %[1]s
%[6]s  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
      - name: %[1]s
        image: %[3]s
        resources:
          requests:
            cpu: %[4]s
            memory: %[5]s
`, name, replicas, image, cpu, mem, strategy)
}

const service = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
`

const pod = `apiVersion: v1
kind: Pod
metadata:
  name: batch
  labels:
    team: data
spec:
  containers:
  - name: batch
    image: registry.local/batch:1.0
    resources:
      requests:
        cpu: 100m
        memory: 64Mi
`

func nodesOf(t testing.TB, specs []string) []corev1.Node {
	t.Helper()
	var out []corev1.Node
	for _, s := range specs {
		f := strings.Split(s, ":")
		if len(f) != 3 {
			t.Fatalf("node spec %q", s)
		}
		out = append(out, node(f[0], f[1], f[2]))
	}
	return out
}

// removeNamed drops the object namespace/name from list.
func removeNamed[T any, PT interface {
	*T
	GetNamespace() string
	GetName() string
}](list []T, ns, name string) []T {
	out := list[:0:0]
	for i := range list {
		if p := PT(&list[i]); p.GetNamespace() != ns || p.GetName() != name {
			out = append(out, list[i])
		}
	}
	return out
}
