package nodes_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bosun/nodes"
)

// writeLog writes a container log as the agent lays it out.
func writeLog(t *testing.T, stateDir, container string, previous bool, content string) string {
	t.Helper()
	p := nodes.LogPath(stateDir, "default", "web", container, previous)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteLogs_allTailPreviousAndNotFound(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, "app", false, "one\ntwo\nthree\nfour\n")
	writeLog(t, dir, "app", true, "old\n")
	writeLog(t, dir, "partial", false, "a\nb\nno newline")
	writeLog(t, dir, "empty", false, "")
	long := strings.Repeat(strings.Repeat("x", 99)+"\n", 2000) // 200 KB: crosses read blocks
	writeLog(t, dir, "long", false, long+"last\n")
	for _, tc := range []struct {
		name string
		opt  nodes.LogOptions
		want string
	}{
		{"all", nodes.LogOptions{Container: "app"}, "one\ntwo\nthree\nfour\n"},
		{"tail 2", nodes.LogOptions{Container: "app", TailLines: 2}, "three\nfour\n"},
		{"tail more than there is", nodes.LogOptions{Container: "app", TailLines: 10}, "one\ntwo\nthree\nfour\n"},
		{"previous", nodes.LogOptions{Container: "app", Previous: true}, "old\n"},
		{"tail counts an unterminated last line", nodes.LogOptions{Container: "partial", TailLines: 2}, "b\nno newline"},
		{"empty", nodes.LogOptions{Container: "empty", TailLines: 3}, ""},
		{"tail across blocks", nodes.LogOptions{Container: "long", TailLines: 2}, strings.Repeat("x", 99) + "\nlast\n"},
	} {
		tc.opt.Namespace, tc.opt.Pod = "default", "web"
		var b strings.Builder
		if err := nodes.WriteLogs(context.Background(), dir, tc.opt, &b); err != nil || b.String() != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, b.String(), err, tc.want)
		}
	}
	for _, opt := range []nodes.LogOptions{
		{Namespace: "default", Pod: "web", Container: "nope"},
		{Namespace: "default", Pod: "other", Container: "app"},
		{Namespace: "default", Pod: "web", Container: "partial", Previous: true},
	} {
		err := nodes.WriteLogs(context.Background(), dir, opt, io.Discard)
		if !errors.Is(err, nodes.ErrLogNotFound) {
			t.Errorf("%+v: err = %v, want ErrLogNotFound", opt, err)
		}
	}
	err := nodes.WriteLogs(context.Background(), dir, nodes.LogOptions{Namespace: "default", Pod: "..", Container: "app"}, io.Discard)
	if err == nil || errors.Is(err, nodes.ErrLogNotFound) {
		t.Errorf("pod \"..\": err = %v, want a bad-options error", err)
	}
}

// syncBuffer is a strings.Builder safe to read while WriteLogs writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWriteLogs_followContinuesAfterRotationAndEndsWithThePod rotates the
// log as the agent does on a restart (rename to .1, a new file at the
// path) and checks the stream carries every line once, in order.
func TestWriteLogs_followContinuesAfterRotationAndEndsWithThePod(t *testing.T) {
	dir := t.TempDir()
	p := writeLog(t, dir, "app", false, "first run 1\n")
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- nodes.WriteLogs(context.Background(), dir, nodes.LogOptions{Namespace: "default", Pod: "web", Container: "app", Follow: true}, &out)
	}()
	waitFor(t, "first line streamed", func() bool { return out.String() == "first run 1\n" })
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A partial line, then its end, then the last line of the first run
	// written just before the rotation.
	f.WriteString("first run ")
	waitFor(t, "partial line streamed", func() bool { return strings.HasSuffix(out.String(), "first run ") })
	f.WriteString("2\nfirst run 3\n")
	f.Close()
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a poll sees the path missing
	if err := os.WriteFile(p, []byte("second run 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "first run 1\nfirst run 2\nfirst run 3\nsecond run 1\n"
	waitFor(t, "second run streamed", func() bool { return out.String() == want })
	// An immediate rotation (no gap) is seen too.
	os.Rename(p, p+".1")
	os.WriteFile(p, []byte("third run 1\n"), 0o644)
	want += "third run 1\n"
	waitFor(t, "third run streamed", func() bool { return out.String() == want })

	if err := os.RemoveAll(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the pod's log dir was removed")
	}
	if out.String() != want {
		t.Errorf("stream = %q, want %q", out.String(), want)
	}
}

func TestWriteLogs_followEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, "app", false, "x\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- nodes.WriteLogs(ctx, dir, nodes.LogOptions{Namespace: "default", Pod: "web", Container: "app", Follow: true}, io.Discard)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its context")
	}
}

func TestLogHandler_statusCodesAndStreaming(t *testing.T) {
	dir := t.TempDir()
	p := writeLog(t, dir, "app", false, "one\ntwo\nthree\n")
	srv := httptest.NewServer(nodes.LogHandler(dir))
	defer srv.Close()
	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/logs/default/web/app", 200, "one\ntwo\nthree\n"},
		{"/logs/default/web/app?tail=1", 200, "three\n"},
		{"/logs/default/web/app?tail=-1", 400, ""},
		{"/logs/default/web/app?tail=x", 400, ""},
		{"/logs/default/web/app?follow=maybe", 400, ""},
		{"/logs/default/web/app?previous=1", 404, ""},
		{"/logs/default/web/nope", 404, ""},
		{"/logs/default/web", 404, ""},
	} {
		code, ctype, body := get(tc.path)
		if code != tc.code || (tc.code == 200 && (body != tc.body || !strings.HasPrefix(ctype, "text/plain"))) {
			t.Errorf("GET %s = %d %q %q; want %d %q", tc.path, code, ctype, body, tc.code, tc.body)
		}
	}

	// follow=1 streams: lines appended later arrive while the request is
	// open.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/logs/default/web/app?follow=1&tail=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); line != "three\n" || err != nil {
		t.Fatalf("first followed line = %q, %v", line, err)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("four\n")
	f.Close()
	if line, err := r.ReadString('\n'); line != "four\n" || err != nil {
		t.Fatalf("appended line = %q, %v", line, err)
	}
}
