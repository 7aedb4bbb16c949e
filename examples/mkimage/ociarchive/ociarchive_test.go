package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func sha256Digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func readTar(t *testing.T, r io.Reader) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files := map[string][]byte{}
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
		hdrs[h.Name] = h
	}
}

func testImage() Image {
	return Image{
		Ref:          "localhost/tiny:v1",
		Files:        []File{{Path: "/bin/tiny", Mode: 0o755, Data: []byte("#!tiny\n")}},
		Dirs:         []string{"/tmp", "/etc"},
		Entrypoint:   []string{"/bin/tiny"},
		Env:          []string{"PATH=/bin"},
		Architecture: "amd64",
	}
}

func TestWrite_digestsMatchContent(t *testing.T) {
	var buf bytes.Buffer
	desc, err := Write(&buf, testImage())
	if err != nil {
		t.Fatal(err)
	}
	files, _ := readTar(t, &buf)

	// Every blob is named after the sha256 of its content.
	for name, b := range files {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hex != "" {
			if got := sha256Digest(b); got != "sha256:"+hex {
				t.Errorf("%s: content digest %s", name, got)
			}
		}
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", files["oci-layout"])
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != desc.Digest {
		t.Fatalf("index manifests = %+v, want %s", idx.Manifests, desc.Digest)
	}
	m0 := idx.Manifests[0]
	if m0.Annotations[ocispec.AnnotationRefName] != "localhost/tiny:v1" || m0.Annotations[AnnotationContainerdImageName] != "localhost/tiny:v1" {
		t.Errorf("index annotations = %v", m0.Annotations)
	}
	if m0.Platform == nil || m0.Platform.Architecture != "amd64" || m0.Platform.OS != "linux" {
		t.Errorf("index platform = %+v", m0.Platform)
	}

	var man ocispec.Manifest
	manBytes := files["blobs/sha256/"+desc.Digest.Encoded()]
	if err := json.Unmarshal(manBytes, &man); err != nil {
		t.Fatal(err)
	}
	if int64(len(manBytes)) != desc.Size {
		t.Errorf("manifest size %d, descriptor says %d", len(manBytes), desc.Size)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(files["blobs/sha256/"+man.Config.Digest.Encoded()], &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/bin/tiny" || cfg.Architecture != "amd64" || cfg.OS != "linux" {
		t.Errorf("config = %+v", cfg)
	}
	if len(man.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
		t.Fatalf("layers %d, diff ids %d", len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	layer := files["blobs/sha256/"+man.Layers[0].Digest.Encoded()]
	if int64(len(layer)) != man.Layers[0].Size {
		t.Errorf("layer size %d, manifest says %d", len(layer), man.Layers[0].Size)
	}
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256Digest(raw); got != cfg.RootFS.DiffIDs[0].String() {
		t.Errorf("diff id %s, uncompressed layer digest %s", cfg.RootFS.DiffIDs[0], got)
	}
	lfiles, lhdrs := readTar(t, bytes.NewReader(raw))
	if string(lfiles["bin/tiny"]) != "#!tiny\n" || lhdrs["bin/tiny"].Mode != 0o755 {
		t.Errorf("bin/tiny = %q mode %o", lfiles["bin/tiny"], lhdrs["bin/tiny"].Mode)
	}
	for name, mode := range map[string]int64{"bin/": 0o755, "etc/": 0o755, "tmp/": 0o1777} {
		if h := lhdrs[name]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != mode {
			t.Errorf("layer dir %s = %+v, want mode %o", name, h, mode)
		}
	}
}

func TestWrite_isDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if _, err := Write(&a, testImage()); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, testImage()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same image differ")
	}
}

func TestWrite_rejectsBadInput(t *testing.T) {
	for name, mut := range map[string]func(*Image){
		"no ref":        func(i *Image) { i.Ref = "" },
		"no arch":       func(i *Image) { i.Architecture = "" },
		"relative file": func(i *Image) { i.Files[0].Path = "bin/tiny" },
		"relative dir":  func(i *Image) { i.Dirs = []string{"tmp"} },
		"file twice":    func(i *Image) { i.Files = append(i.Files, i.Files[0]) },
	} {
		img := testImage()
		mut(&img)
		if _, err := Write(io.Discard, img); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
