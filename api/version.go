package api

import (
	"net/http"
	"runtime"
	"runtime/debug"
)

// Version is the release this binary was built as, set at build time with
// -ldflags "-X bosun/api.Version=v1.2.3"; empty: the module's version from
// the build information ("dev" for a build from a checkout).
var Version = ""

// VersionInfo is a bosun binary's build: what GET /api/v1/version answers
// for the server, and `bosun version` prints for the client.
type VersionInfo struct {
	Version string `json:"version"`
	// Commit is the Git commit built, "-dirty" when the checkout had
	// changes; empty when the build did not record it.
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// BuildVersion is this binary's VersionInfo.
func BuildVersion() VersionInfo {
	v := VersionInfo{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && v.Commit != "" {
			v.Commit += "-dirty"
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	return v
}

// version serves GET /api/v1/version (ReadOnly): the server's build.
func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, BuildVersion())
}
