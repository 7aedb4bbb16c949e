package syncwindow

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"bosun/manifest"
)

// maxFileSize bounds File: windows are a few lines.
const maxFileSize = 64 << 10

// Load reads and parses File under root (a checkout of the repository); a
// repository without the file has no windows. Like manifests, the file
// must be a regular file (a symbolic link could point outside the
// repository).
func Load(root string) ([]Window, []byte, error) {
	path := filepath.Join(root, filepath.FromSlash(File))
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fileError("cannot read: " + describe(err))
	case info.Mode()&fs.ModeSymlink != 0:
		return nil, nil, fileError("symbolic links are not followed; make it a regular file")
	case !info.Mode().IsRegular():
		return nil, nil, fileError("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fileError("cannot read: " + describe(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, fileError("cannot read: " + describe(err))
	}
	if len(data) > maxFileSize {
		return nil, nil, fileError("file is larger than 64 KiB")
	}
	ws, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return ws, data, nil
}

func fileError(msg string) error {
	return manifest.Errors{{File: File, Message: msg}}
}

// describe drops the absolute path an *fs.PathError carries.
func describe(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
