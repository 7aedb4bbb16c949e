// Command mkimage wraps one static binary into an OCI image-layout tar
// archive that `bosun image import` (containerd's importer) accepts:
//
//	go run ./examples/mkimage -bin PATH -path /bosun-hello \
//	    -ref localhost/bosun-hello:v1 -out build/images/bosun-hello-v1.tar
//
// The image holds the binary (mode 0755) plus empty /etc and /tmp, with the
// binary as entrypoint. Output is deterministic.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"bosun/examples/mkimage/ociarchive"
)

func main() {
	bin := flag.String("bin", "", "path of the binary to put in the image")
	inPath := flag.String("path", "", "path of the binary inside the image (default /<basename of -bin>)")
	ref := flag.String("ref", "", "full image reference, e.g. localhost/bosun-hello:v1")
	out := flag.String("out", "", "archive to write")
	arch := flag.String("arch", runtime.GOARCH, "image architecture")
	flag.Parse()
	if err := run(*bin, *inPath, *ref, *out, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(bin, inPath, ref, out, arch string) error {
	if bin == "" || ref == "" || out == "" {
		return fmt.Errorf("-bin, -ref and -out are required")
	}
	if inPath == "" {
		inPath = "/" + filepath.Base(bin)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	desc, err := ociarchive.Write(&buf, ociarchive.Image{
		Ref:          ref,
		Files:        []ociarchive.File{{Path: inPath, Mode: 0o755, Data: data}},
		Dirs:         []string{"/etc", "/tmp"},
		Entrypoint:   []string{inPath},
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Architecture: arch,
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", out, ref, desc.Digest)
	return nil
}
