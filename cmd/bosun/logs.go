package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"bosun/reconciler"
)

func cmdLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := serverFlag(fs)
	container := fs.String("c", "", "container (default: the pod's only container)")
	follow := fs.Bool("f", false, "follow the log, across container restarts")
	previous := fs.Bool("previous", false, "the log of the previous run of the container")
	tail := fs.Int("tail", 0, "only the last N lines (0: all)")
	namespace := fs.String("n", "default", "namespace")
	if err := fs.Parse(reorder(args, append([]string{"c", "tail", "n"}, clientValueFlags...)...)); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: errors.New("usage: bosun logs POD|pod/NAME|job/NAME [-c CONTAINER] [-f] [--previous] [--tail N]")}
	}
	pod := fs.Arg(0)
	switch kind, name, ok := strings.Cut(pod, "/"); {
	case !ok:
	case kind == "pod" || kind == "pods" || kind == "po":
		pod = name
	case kind == "job" || kind == "jobs":
		var err error
		if pod, err = newestJobPod(ctx, newClient(server), *namespace, name, stderr); err != nil {
			return err
		}
	default:
		return &exitError{code: 2, err: fmt.Errorf("logs of %q: name a pod, pod/NAME or job/NAME", fs.Arg(0))}
	}
	q := url.Values{}
	if *container != "" {
		q.Set("container", *container)
	}
	if *follow {
		q.Set("follow", "1")
	}
	if *previous {
		q.Set("previous", "1")
	}
	if *tail > 0 {
		q.Set("tail", strconv.Itoa(*tail))
	}
	path := fmt.Sprintf("/api/v1/logs/%s/%s?%s", url.PathEscape(*namespace), url.PathEscape(pod), q.Encode())
	err := newClient(server).streamTo(ctx, path, stdout)
	if errors.Is(err, context.Canceled) {
		return nil // ^C ends a follow
	}
	return err
}

// newestJobPod names the newest pod of a Job, as kubectl logs job/NAME
// picks one; it says which on stderr when the Job has several.
func newestJobPod(ctx context.Context, c *client, namespace, job string, stderr io.Writer) (string, error) {
	var list struct{ Items []corev1.Pod }
	if err := c.do(ctx, "GET", "/api/v1/pods?namespace="+url.QueryEscape(namespace), nil, &list); err != nil {
		return "", err
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.Namespace == namespace && p.Labels[reconciler.LabelBatchJobName] == job {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return "", fmt.Errorf("job %s/%s has no pods: it does not exist, has not started, or its pods were deleted (ttlSecondsAfterFinished)", namespace, job)
	}
	newest := slices.MaxFunc(pods, func(a, b corev1.Pod) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	if len(pods) > 1 {
		fmt.Fprintf(stderr, "Found %d pods, using pod/%s\n", len(pods), newest.Name)
	}
	return newest.Name, nil
}
