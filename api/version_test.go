package api

import (
	"runtime"
	"testing"
)

func TestBuildVersion_namesTheBuild(t *testing.T) {
	v := BuildVersion()
	if v.Version == "" || v.GoVersion != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("BuildVersion() = %+v", v)
	}
}
