package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"bosun/kube"
)

func init() {
	for _, k := range []string{"persistentvolumeclaims", "persistentvolumeclaim", "pvc"} {
		kinds[k] = "persistentvolumeclaims"
	}
	printers["persistentvolumeclaims"] = printClaims
}

// parseVolumeCapacity reads --volume-capacity: a quantity of bytes (10Gi);
// 0 is no limit, which nodes.Config says with a negative number.
func parseVolumeCapacity(v string) (int64, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return 0, fmt.Errorf("want a quantity such as 10Gi: %w", err)
	}
	switch n := q.Value(); {
	case n < 0:
		return 0, fmt.Errorf("%s: must not be negative", v)
	case n == 0:
		return -1, nil
	default:
		return n, nil
	}
}

// printClaims lists PersistentVolumeClaims as kubectl does, with the node
// holding each one's volume.
func printClaims(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct {
		Items []corev1.PersistentVolumeClaim
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSTATUS\tVOLUME\tCAPACITY\tACCESS MODES\tNODE\tAGE")
	for _, c := range list.Items {
		capacity := ""
		if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
			capacity = q.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Namespace, c.Name, orNone(string(c.Status.Phase)), orNone(c.Spec.VolumeName),
			orNone(capacity), orNone(accessModes(c.Status.AccessModes)), orNone(kube.ClaimNode(&c)), age(c.CreationTimestamp.Time, now))
	}
	return nil
}

// accessModes abbreviates access modes as kubectl does: RWO, RWOP.
func accessModes(ms []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{corev1.ReadWriteOnce: "RWO", corev1.ReadWriteOncePod: "RWOP",
		corev1.ReadOnlyMany: "ROX", corev1.ReadWriteMany: "RWX"}
	var out []string
	for _, m := range ms {
		if s, ok := short[m]; ok {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
