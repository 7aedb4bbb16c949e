package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

func init() { printers["statefulsets"] = printStatefulSets }

// printStatefulSets prints kubectl's columns for StatefulSets (READY, AGE),
// with the revisions and images when wide.
func printStatefulSets(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []appsv1.StatefulSet }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tREADY\tUP-TO-DATE\tAGE"
	if wide {
		head += "\tCURRENT-REVISION\tUPDATE-REVISION\tIMAGES"
	}
	fmt.Fprintln(tw, head)
	for _, s := range list.Items {
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		line := fmt.Sprintf("%s\t%s\t%d/%d\t%d\t%s", s.Namespace, s.Name, s.Status.ReadyReplicas, want,
			s.Status.UpdatedReplicas, age(s.CreationTimestamp.Time, now))
		if wide {
			var images []string
			for _, c := range s.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
			line += "\t" + dash(s.Status.CurrentRevision) + "\t" + dash(s.Status.UpdateRevision) + "\t" + strings.Join(images, ",")
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}
