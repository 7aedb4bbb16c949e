package manifest

import (
	"strings"
	"testing"
)

// lifecyclePod is a valid pod with an init container, a sidecar, probes of
// every handler and hooks; cases append to or alter it.
const lifecyclePod = `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  terminationGracePeriodSeconds: 10
  initContainers:
  - name: setup
    image: example/app:1.0
    args: ["-print", "ready"]
  - name: proxy
    image: example/proxy:1.0
    restartPolicy: Always
    ports: [{name: admin, containerPort: 9901}]
    startupProbe:
      httpGet: {path: /ready, port: admin}
  containers:
  - name: app
    image: example/app:1.0
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      grpc: {port: 9000, service: app}
    livenessProbe:
      tcpSocket: {port: http}
      terminationGracePeriodSeconds: 5
    lifecycle:
      postStart:
        exec: {command: ["/app", "warm-up"]}
      preStop:
        sleep: {seconds: 5}
`

func TestDecode_lifecycleValuesAccepted(t *testing.T) {
	if _, err := Decode("m.yaml", []byte(lifecyclePod)); err != nil {
		t.Fatalf("valid pod rejected:\n%v", err)
	}
}

func TestDecode_lifecycleValuesRejectedWithExactMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
		to   string
		want []string
	}{
		{"probes on an init container that runs to completion",
			`    args: ["-print", "ready"]` + "\n",
			`    args: ["-print", "ready"]` + "\n    readinessProbe:\n      tcpSocket: {port: 80}\n    lifecycle:\n      postStart:\n        sleep: {seconds: 1}\n",
			[]string{
				"m.yaml:11: spec.initContainers[0].readinessProbe: must not be set on an init container that runs to completion (only a sidecar, restartPolicy: Always, is probed)",
				"m.yaml:13: spec.initContainers[0].lifecycle: must not be set on an init container that runs to completion (only a sidecar, restartPolicy: Always, has hooks)",
			}},
		{"an init container's restartPolicy other than Always",
			"restartPolicy: Always", "restartPolicy: Never",
			[]string{
				`m.yaml:13: spec.initContainers[1].restartPolicy: unsupported value "Never": an init container's restartPolicy may only be Always (a sidecar)`,
				"m.yaml:15: spec.initContainers[1].startupProbe: must not be set on an init container that runs to completion (only a sidecar, restartPolicy: Always, is probed)",
			}},
		{"a probe without a handler, and one with two",
			"      grpc: {port: 9000, service: app}\n",
			"      periodSeconds: 2\n",
			[]string{"m.yaml:21: spec.containers[0].readinessProbe: must have a handler: exec, httpGet, tcpSocket or grpc"}},
		{"two handlers",
			"      tcpSocket: {port: http}\n",
			"      tcpSocket: {port: http}\n      exec: {command: [/check]}\n",
			[]string{"m.yaml:23: spec.containers[0].livenessProbe: must have one handler, not exec and tcpSocket"}},
		{"a named port the container does not have",
			"port: admin}", "port: metrics}",
			[]string{`m.yaml:16: spec.initContainers[1].startupProbe.httpGet.port: port "metrics": the container has no port of that name`}},
		{"gRPC port out of range and an unknown mode",
			"grpc: {port: 9000, service: app}", "grpc: {port: 70000, mode: QUIC}",
			[]string{
				`m.yaml:22: spec.containers[0].readinessProbe.grpc.mode: unsupported value "QUIC": must be Plaintext or TLS`,
				"m.yaml:22: spec.containers[0].readinessProbe.grpc.port: 70000 is out of range (1-65535)",
			}},
		{"terminationGracePeriodSeconds on a readiness probe, and 0 on liveness",
			"      grpc: {port: 9000, service: app}\n",
			"      grpc: {port: 9000, service: app}\n      terminationGracePeriodSeconds: 3\n",
			[]string{"m.yaml:23: spec.containers[0].readinessProbe.terminationGracePeriodSeconds: must not be set on a readinessProbe: it never kills the container"}},
		{"zero grace on liveness and a success threshold above 1",
			"      terminationGracePeriodSeconds: 5\n",
			"      terminationGracePeriodSeconds: 0\n      successThreshold: 2\n",
			[]string{
				"m.yaml:25: spec.containers[0].livenessProbe.terminationGracePeriodSeconds: must be greater than 0",
				"m.yaml:26: spec.containers[0].livenessProbe.successThreshold: must be 1 for liveness and startup probes",
			}},
		{"negative probe numbers",
			"      grpc: {port: 9000, service: app}\n",
			"      grpc: {port: 9000, service: app}\n      periodSeconds: -1\n      failureThreshold: -2\n",
			[]string{
				"m.yaml:23: spec.containers[0].readinessProbe.periodSeconds: must be >= 0",
				"m.yaml:24: spec.containers[0].readinessProbe.failureThreshold: must be >= 0",
			}},
		{"a hook without a handler, an exec without a command",
			`        exec: {command: ["/app", "warm-up"]}`,
			"        exec: {command: []}\n        httpGet: {port: 8080}",
			[]string{"m.yaml:27: spec.containers[0].lifecycle.postStart: must have one handler, not exec and httpGet",
				"m.yaml:28: spec.containers[0].lifecycle.postStart.exec.command: required"}},
		{"a preStop sleep longer than the grace period",
			"sleep: {seconds: 5}", "sleep: {seconds: 30}",
			[]string{"m.yaml:30: spec.containers[0].lifecycle.preStop.sleep.seconds: 30 must not exceed the pod's terminationGracePeriodSeconds (10)"}},
		{"the deprecated tcpSocket hook is refused",
			"        sleep: {seconds: 5}\n", "        tcpSocket: {port: 8080}\n",
			[]string{"m.yaml:30: spec.containers[0].lifecycle.preStop.tcpSocket: not supported by bosun: deprecated in Kubernetes"}},
		{"stopSignal is refused",
			"    lifecycle:\n", "    lifecycle:\n      stopSignal: SIGUSR1\n",
			[]string{"m.yaml:27: spec.containers[0].lifecycle.stopSignal: not supported by bosun"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(lifecyclePod, tc.from) {
				t.Fatalf("case does not apply: %q not in the pod", tc.from)
			}
			_, err := Decode("m.yaml", []byte(strings.Replace(lifecyclePod, tc.from, tc.to, 1)))
			if err == nil {
				t.Fatalf("accepted; want:\n%s", strings.Join(tc.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}
