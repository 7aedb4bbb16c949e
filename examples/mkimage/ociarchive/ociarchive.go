// Package ociarchive writes single-layer OCI image-layout tar archives, the
// form in which bosun's example images are shipped (there is no registry: an
// archive is imported into containerd with `bosun image import`).
//
// Output is deterministic: the same Image always yields the same bytes, so
// the same digests. Entries carry a fixed modification time and root
// ownership; the layer is gzip-compressed with no timestamp in its header.
//
// The archive holds oci-layout, index.json and blobs/sha256/<hex> for the
// layer, the image config and the manifest. The index names the manifest with
// both org.opencontainers.image.ref.name and io.containerd.image.name set to
// the full reference, which containerd's importer uses as the image name.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // registers sha256 for go-digest
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationContainerdImageName is the index annotation containerd's importer
// reads first for an image's name.
const AnnotationContainerdImageName = "io.containerd.image.name"

// Epoch is the modification time of every entry (layer and archive).
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// File is a regular file placed in the image's single layer.
type File struct {
	Path string // absolute path in the image, e.g. /bosun-hello
	Mode int64  // permission bits, e.g. 0o755
	Data []byte
}

// Image describes the image to write.
type Image struct {
	Ref          string // full reference, e.g. localhost/bosun-hello:v1
	Files        []File
	Dirs         []string // empty directories (mode 0755; /tmp gets 01777)
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	OS           string // default linux
	Architecture string // required, e.g. runtime.GOARCH
}

// Write writes img as an OCI image-layout tar archive to w and returns the
// descriptor of its manifest.
func Write(w io.Writer, img Image) (ocispec.Descriptor, error) {
	if img.Ref == "" {
		return ocispec.Descriptor{}, fmt.Errorf("image ref is empty")
	}
	if img.Architecture == "" {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: architecture is empty", img.Ref)
	}
	if img.OS == "" {
		img.OS = "linux"
	}
	layer, diffID, err := buildLayer(img)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: layer: %w", img.Ref, err)
	}
	layerDesc := describe(ocispec.MediaTypeImageLayerGzip, layer)

	created := Epoch
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: img.OS, Architecture: img.Architecture},
		Config: ocispec.ImageConfig{
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			Env:        img.Env,
			WorkingDir: img.WorkingDir,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: config: %w", img.Ref, err)
	}
	cfgDesc := describe(ocispec.MediaTypeImageConfig, cfgBytes)

	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	}
	manBytes, err := json.Marshal(manifest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: manifest: %w", img.Ref, err)
	}
	manDesc := describe(ocispec.MediaTypeImageManifest, manBytes)
	manDesc.Platform = &ocispec.Platform{OS: img.OS, Architecture: img.Architecture}
	manDesc.Annotations = map[string]string{
		ocispec.AnnotationRefName:     img.Ref,
		AnnotationContainerdImageName: img.Ref,
	}

	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manDesc},
	}
	idxBytes, err := json.Marshal(index)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: index: %w", img.Ref, err)
	}
	layoutBytes, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return ocispec.Descriptor{}, err
	}

	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layoutBytes},
		{"index.json", idxBytes},
		{blobPath(layerDesc.Digest), layer},
		{blobPath(cfgDesc.Digest), cfgBytes},
		{blobPath(manDesc.Digest), manBytes},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(dirHeader(dir, 0o755)); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("image %s: write archive: %w", img.Ref, err)
		}
	}
	for _, e := range entries {
		if err := writeFile(tw, e.name, 0o644, e.data); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("image %s: write archive: %w", img.Ref, err)
		}
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s: write archive: %w", img.Ref, err)
	}
	return manDesc, nil
}

func blobPath(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

func describe(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// buildLayer returns the gzip-compressed layer and the digest of its
// uncompressed tar (the diff ID).
func buildLayer(img Image) ([]byte, digest.Digest, error) {
	type entry struct {
		name string
		dir  bool
		file File
	}
	var entries []entry
	seen := map[string]bool{}
	addDir := func(p string) {
		for p != "/" && p != "." && !seen[p] {
			seen[p] = true
			entries = append(entries, entry{name: p, dir: true})
			p = path.Dir(p)
		}
	}
	for _, d := range img.Dirs {
		if !path.IsAbs(d) {
			return nil, "", fmt.Errorf("dir %q: not an absolute path", d)
		}
		addDir(path.Clean(d))
	}
	for _, f := range img.Files {
		if !path.IsAbs(f.Path) {
			return nil, "", fmt.Errorf("file %q: not an absolute path", f.Path)
		}
		p := path.Clean(f.Path)
		if seen[p] {
			return nil, "", fmt.Errorf("file %q: listed twice", f.Path)
		}
		seen[p] = true
		addDir(path.Dir(p))
		entries = append(entries, entry{name: p, file: f})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		name := strings.TrimPrefix(e.name, "/")
		var err error
		if e.dir {
			mode := int64(0o755)
			if e.name == "/tmp" {
				mode = 0o1777
			}
			err = tw.WriteHeader(dirHeader(name+"/", mode))
		} else {
			err = writeFile(tw, name, e.file.Mode, e.file.Data)
		}
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(raw.Bytes())

	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

func dirHeader(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: Epoch, Format: tar.FormatPAX}
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)),
		ModTime: Epoch, Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
