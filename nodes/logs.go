package nodes

// Reading container logs: the files the agent writes under
// StateDir/logs/<ns>_<pod>/ (see LogPath), served as they are or followed
// across restarts.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrLogNotFound is wrapped by WriteLogs' error when the pod or container
// has no log on this node.
var ErrLogNotFound = errors.New("log not found")

// errBadLogOptions is wrapped when the options cannot name a log.
var errBadLogOptions = errors.New("bad log options")

// LogOptions selects a container's log; Follow keeps streaming across
// container restarts (the agent rotates <c>.log to <c>.log.1 on restart),
// until ctx ends or the pod is deleted (its log dir removed).
type LogOptions struct {
	Namespace, Pod, Container string
	// Follow streams what the container writes until ctx ends or the pod
	// is deleted. It has no effect with Previous (a previous log is
	// complete).
	Follow bool
	// Previous selects the log of the container's previous run.
	Previous bool
	// TailLines, when > 0, starts at the last TailLines lines; 0 is all.
	TailLines int
}

func (o LogOptions) validate() error {
	for _, f := range []struct{ name, v string }{{"namespace", o.Namespace}, {"pod", o.Pod}, {"container", o.Container}} {
		if f.v == "" || f.v == "." || f.v == ".." || strings.ContainsAny(f.v, "/\\\x00") {
			return fmt.Errorf("%w: %s %q is not a valid name", errBadLogOptions, f.name, f.v)
		}
	}
	if o.TailLines < 0 {
		return fmt.Errorf("%w: tail %d: must be >= 0", errBadLogOptions, o.TailLines)
	}
	return nil
}

// followPoll is how often a followed log is checked for new data,
// rotation and deletion.
const followPoll = 150 * time.Millisecond

// WriteLogs copies a container's log to w. When w is an http.Flusher it is
// flushed after each chunk. With Follow it keeps copying what is appended;
// when the container restarts (the agent renames the log to <c>.log.1 and
// a new file appears at the path) it finishes the old file and continues
// with the new one from its start, so nothing is lost or repeated. It
// returns nil when ctx ends or the pod's log directory is removed (the pod
// was deleted). Errors wrap ErrLogNotFound when there is no such log.
//
// Following polls every 150 ms; a container that restarts twice within one
// poll loses the middle run's output from the stream (it stays in
// <c>.log.1 until the next restart).
func WriteLogs(ctx context.Context, stateDir string, opt LogOptions, w io.Writer) error {
	if err := opt.validate(); err != nil {
		return err
	}
	what := fmt.Sprintf("log of %s/%s container %s", opt.Namespace, opt.Pod, opt.Container)
	if opt.Previous {
		what = "previous " + what
	}
	path := LogPath(stateDir, opt.Namespace, opt.Pod, opt.Container, opt.Previous)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", what, ErrLogNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { f.Close() }()
	if opt.TailLines > 0 {
		off, err := tailOffset(f, opt.TailLines)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	fw := flushWriter{w}
	buf := make([]byte, 32<<10)
	drain := func(f *os.File) error {
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := fw.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	if err := drain(f); err != nil {
		return err
	}
	if !opt.Follow || opt.Previous {
		return nil
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := drain(f); err != nil {
			return err
		}
		cur, err := f.Stat()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		at, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if _, derr := os.Stat(filepath.Dir(path)); errors.Is(derr, os.ErrNotExist) {
				return nil // the pod was deleted
			}
			continue // rotated; the new instance's log is not there yet
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		case os.SameFile(cur, at):
			continue
		}
		// Rotated: finish the old file (its writer has exited), then
		// follow the new one from its start.
		if err := drain(f); err != nil {
			return err
		}
		nf, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		f.Close()
		f = nf
		if err := drain(f); err != nil {
			return err
		}
	}
}

// tailOffset returns the offset of the start of the last n lines of f (a
// final line without a newline counts as a line).
func tailOffset(f *os.File, n int) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	if end == 0 {
		return 0, nil
	}
	const block = 32 << 10
	buf := make([]byte, block)
	pos := end
	newlines := 0
	// A final newline ends the last line rather than starting a new one.
	skipLast := true
	for pos > 0 {
		size := int64(block)
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		chunk := buf[:size]
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast && pos+int64(i) == end-1 {
				continue
			}
			newlines++
			if newlines == n {
				return pos + int64(i) + 1, nil
			}
		}
	}
	return 0, nil
}

// flushWriter flushes its writer after each write when it can.
type flushWriter struct{ w io.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok && err == nil {
		fl.Flush()
	}
	return n, err
}

// LogHandler serves container logs from stateDir:
//
//	GET /logs/{namespace}/{pod}/{container}?follow=1&previous=1&tail=N
//
// as text/plain, streamed (and flushed) while following. It answers 404
// when there is no such log and 400 on bad parameters. The caller mounts it
// (with http.StripPrefix when it lives under a prefix) and decides who may
// call it.
func LogHandler(stateDir string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		opt := LogOptions{Namespace: r.PathValue("namespace"), Pod: r.PathValue("pod"), Container: r.PathValue("container")}
		q := r.URL.Query()
		var err error
		parseBool := func(name string, dst *bool) {
			if v := q.Get(name); v != "" && err == nil {
				if *dst, err = strconv.ParseBool(v); err != nil {
					err = fmt.Errorf("%s=%q: want a boolean (1, true, 0, false)", name, v)
				}
			}
		}
		parseBool("follow", &opt.Follow)
		parseBool("previous", &opt.Previous)
		if v := q.Get("tail"); v != "" && err == nil {
			if opt.TailLines, err = strconv.Atoi(v); err != nil || opt.TailLines < 0 {
				err = fmt.Errorf("tail=%q: want a number of lines >= 0", v)
			}
		}
		if err == nil {
			err = opt.validate()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, serr := os.Stat(LogPath(stateDir, opt.Namespace, opt.Pod, opt.Container, opt.Previous)); errors.Is(serr, os.ErrNotExist) {
			http.Error(w, fmt.Sprintf("log of %s/%s container %s: %v", opt.Namespace, opt.Pod, opt.Container, ErrLogNotFound), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		cw := &countingWriter{w: w}
		if opt.Follow {
			// A follower sees the answer begin before the first line.
			w.WriteHeader(http.StatusOK)
			cw.Flush()
			cw.begun = true
		}
		err = WriteLogs(r.Context(), stateDir, opt, cw)
		switch {
		case err == nil:
		case cw.begun:
			// The answer has begun: the stream just ends.
		case errors.Is(err, ErrLogNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, errBadLogOptions):
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

// countingWriter notes whether the answer has begun, to know whether an
// error can still become a status code; it passes flushes through.
type countingWriter struct {
	w     io.Writer
	begun bool
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.begun = c.begun || len(p) > 0
	return c.w.Write(p)
}

func (c *countingWriter) Flush() {
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
}
