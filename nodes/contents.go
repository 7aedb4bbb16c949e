package nodes

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// containerContents is what one instance of a container is given beyond
// its image: environment, mounts and security settings.
type containerContents struct {
	Env      []string
	Mounts   []specs.Mount
	Security securityPlan
}

// containerContents reads the ConfigMaps and Secrets the container refers
// to and builds its environment, mounts (staging subPaths) and security
// plan. A problem with the pod's spec or its sources (a missing ConfigMap
// or key, privileged without --allow-privileged, a hostPath not allowed)
// is an errConfig error, so the container waits with
// CreateContainerConfigError and the message names the object, key or
// flag, never a value.
func (w *podWorker) containerContents(ctx context.Context, r *podRun, c *corev1.Container) (containerContents, error) {
	var cc containerContents
	cc.Security = securityFor(&r.pod.Spec, c)
	if err := cc.Security.check(w.a.cfg.AllowPrivileged); err != nil {
		return cc, fmt.Errorf("%w: container %s: %w", errConfig, c.Name, err)
	}
	src, err := w.readSources(ctx, r.pod)
	if err != nil {
		return cc, err
	}
	env, skipped, err := containerEnv(c, w.facts(r), src)
	if err != nil {
		return cc, fmt.Errorf("%w: %w", errConfig, err)
	}
	if len(skipped) > 0 {
		w.log.Warn("envFrom keys left out: not valid environment variable names", "container", c.Name, "keys", skipped)
	}
	cc.Env = env
	if cc.Mounts, err = w.containerMounts(r, c); err != nil {
		return cc, err
	}
	return cc, nil
}
