package gitsource

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// exportTree writes the tree of commit to root/name, atomically: it is
// written to a temporary sibling and renamed into place. Files are made
// read-only. Entries whose path is not local (.., absolute, a .git
// component) and symlinks that point outside the tree are skipped with a
// warning rather than failing the revision: Git itself refuses to check them
// out, and the manifest reader must never follow them out of the snapshot.
// Submodules are not followed.
func exportTree(commit *object.Commit, root, name string, log *slog.Logger) error {
	tree, err := commit.Tree()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(root, ".tmp-"+name)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	var links []string
	err = tree.Files().ForEach(func(f *object.File) error {
		if !safePath(f.Name) {
			log.Warn("skipping unsafe path in commit", "commit", commit.Hash.String(), "path", f.Name)
			return nil
		}
		dst := filepath.Join(tmp, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			if !symlinkStaysInside(f.Name, target) {
				log.Warn("skipping symlink pointing outside the repository", "commit", commit.Hash.String(), "path", f.Name)
				return nil
			}
			links = append(links, f.Name)
			return os.Symlink(target, dst)
		case filemode.Executable:
			return writeBlob(f, dst, 0o555)
		default:
			return writeBlob(f, dst, 0o444)
		}
	})
	if err == nil {
		err = dropEscapingLinks(tmp, links, commit.Hash.String(), log)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(root, name))
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return nil
}

// dropEscapingLinks removes the symlinks (tree paths under dir) that resolve
// outside dir once every link is in place: a lexical check alone misses
// chains through other links (sub/up -> .., then x -> sub/up/sub/up/..).
func dropEscapingLinks(dir string, links []string, commit string, log *slog.Logger) error {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for _, l := range links {
		p := filepath.Join(dir, filepath.FromSlash(l))
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			if rel, rerr := filepath.Rel(realDir, real); rerr == nil && filepath.IsLocal(rel) {
				continue
			}
		}
		// Escaping, dangling or looping: a reader could only be hurt by it.
		log.Warn("skipping symlink pointing outside the repository", "commit", commit, "path", l)
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

func writeBlob(f *object.File, dst string, mode os.FileMode) error {
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer r.Close()
	w, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	return w.Close()
}

// safePath reports whether a tree path (slash-separated) stays inside the
// tree and names no .git directory.
func safePath(p string) bool {
	if !filepath.IsLocal(filepath.FromSlash(p)) || strings.Contains(p, "\\") {
		return false
	}
	return !slices.ContainsFunc(strings.Split(p, "/"), func(c string) bool {
		return strings.EqualFold(c, ".git")
	})
}

// symlinkStaysInside reports whether a symlink at tree path p with the given
// target resolves (lexically) inside the tree.
func symlinkStaysInside(p, target string) bool {
	if path.IsAbs(target) || filepath.IsAbs(target) {
		return false
	}
	resolved := path.Join(path.Dir(p), target)
	return filepath.IsLocal(filepath.FromSlash(resolved))
}
