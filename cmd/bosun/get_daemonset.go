package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { printers["daemonsets"] = printDaemonSets }

// printDaemonSets prints kubectl's columns for DaemonSets: DESIRED,
// CURRENT, READY, UP-TO-DATE, AVAILABLE (nodes, from the status the
// leader writes), NODE SELECTOR and AGE; wide adds CONTAINERS, IMAGES and
// SELECTOR.
func printDaemonSets(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []appsv1.DaemonSet }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tDESIRED\tCURRENT\tREADY\tUP-TO-DATE\tAVAILABLE\tNODE SELECTOR\tAGE"
	if wide {
		head += "\tCONTAINERS\tIMAGES\tSELECTOR"
	}
	fmt.Fprintln(tw, head)
	for _, d := range list.Items {
		st := d.Status
		line := fmt.Sprintf("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s", d.Namespace, d.Name, st.DesiredNumberScheduled,
			st.CurrentNumberScheduled, st.NumberReady, st.UpdatedNumberScheduled, st.NumberAvailable,
			dash(labelString(d.Spec.Template.Spec.NodeSelector)), age(d.CreationTimestamp.Time, now))
		if wide {
			var names, images []string
			for _, c := range d.Spec.Template.Spec.Containers {
				names, images = append(names, c.Name), append(images, c.Image)
			}
			// kubectl's form, matchExpressions included ("<none>" for none).
			sel := metav1.FormatLabelSelector(d.Spec.Selector)
			line += "\t" + strings.Join(names, ",") + "\t" + strings.Join(images, ",") + "\t" + sel
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}
