// Package atomicfile writes files that are either absent or whole, never
// half written: through a temporary file in the same directory, with its
// mode set before any byte is written, synced, then renamed over the
// target (Write) or linked to it (Create, which never replaces a file).
// Keys, certificates and tokens are written this way.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, of mode mode.
func Write(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, os.Rename)
}

// Create writes data to path, of mode mode, only if path does not exist
// (an error matching fs.ErrExist otherwise): two processes creating the
// same file do not overwrite each other.
func Create(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, os.Link)
}

func write(path string, data []byte, mode os.FileMode, place func(tmp, path string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return place(tmp.Name(), path)
}
