package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"bosun/reconciler"
)

func newLogsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs POD|pod/NAME|job/NAME",
		Short: "Print a container's log",
		Long: `Logs prints the log of a pod's container (its only one, or -c), from
whichever node runs it. job/NAME picks the Job's newest pod, as kubectl
does. -f follows the log across container restarts until ^C.`,
		Example: `  bosun logs web-7d4b9-x2x9q
  bosun logs web-7d4b9-x2x9q -c migrate --previous
  bosun logs job/backup --tail 20
  bosun logs -f web-7d4b9-x2x9q`,
		Args: cobra.ExactArgs(1),
	}
	client := clientFlags(cmd)
	container := cmd.Flags().StringP("container", "c", "", "container (default: the pod's only container)")
	follow := cmd.Flags().BoolP("follow", "f", false, "follow the log, across container restarts")
	previous := cmd.Flags().BoolP("previous", "p", false, "the log of the previous run of the container")
	tail := cmd.Flags().Int("tail", 0, "only the last N lines (0: all)")
	namespace := cmd.Flags().StringP("namespace", "n", "default", "namespace")
	cmd.RegisterFlagCompletionFunc("namespace", completeNames(client, "namespaces"))
	cmd.ValidArgsFunction = completeFirst(client, "pods")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		pod := args[0]
		switch kind, name, ok := strings.Cut(pod, "/"); {
		case !ok:
		case kind == "pod" || kind == "pods" || kind == "po":
			pod = name
		case kind == "job" || kind == "jobs":
			var err error
			if pod, err = newestJobPod(ctx, newClient(client), *namespace, name, cmd.ErrOrStderr()); err != nil {
				return err
			}
		default:
			return usageError(cmd, "logs of %q: name a pod, pod/NAME or job/NAME", args[0])
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
		err := newClient(client).streamTo(ctx, path, stdout)
		if errors.Is(err, context.Canceled) {
			return nil // ^C ends a follow
		}
		return err
	}
	return cmd
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
