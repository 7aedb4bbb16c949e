package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// asset is one embedded file with its type and a strong ETag (a hash of
// its bytes: the binary's assets never change while it runs).
type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// Assets are the dashboard's files, read once from the binary.
type Assets struct {
	files map[string]*asset
}

// Load reads the embedded assets.
func Load() (*Assets, error) {
	a := &Assets{files: map[string]*asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := path.Base(p)
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		a.files[name] = &asset{name: name, body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Names lists the assets served under /assets/ (every file but the page).
func (a *Assets) Names() []string {
	var out []string
	for n := range a.files {
		if n != IndexFile {
			out = append(out, n)
		}
	}
	return out
}

// IndexFile is the page itself, served at /.
const IndexFile = "index.html"

// ContentSecurityPolicy is sent with the page and every asset: scripts,
// styles and connections from the API's own origin only, no inline
// script, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// ServePage answers the page (index.html).
func (a *Assets) ServePage(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, IndexFile)
}

// ServeAsset answers /assets/NAME; 404 for a name that is not an asset
// (or is the page).
func (a *Assets) ServeAsset(w http.ResponseWriter, r *http.Request, name string) {
	if name == IndexFile || a.files[name] == nil {
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	a.serve(w, r, name)
}

func (a *Assets) serve(w http.ResponseWriter, r *http.Request, name string) {
	f := a.files[name]
	h := w.Header()
	SecurityHeaders(h)
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	// Revalidated every time (a 304 for an unchanged ETag): an upgraded
	// binary's assets are seen at once.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}

// SecurityHeaders sets the headers every answer of the dashboard carries:
// the CSP, no sniffing, no framing, and no Referer (a URL never carries a
// token past the redirect, but nothing of the dashboard's URLs leaves it).
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}
