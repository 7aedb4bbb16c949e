package dashboard

import (
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestLoad_servesThePageAndItsFiles(t *testing.T) {
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	names := a.Names()
	slices.Sort(names)
	if strings.Join(names, ",") != "app.css,app.js" {
		t.Errorf("assets = %v", names)
	}
	rec := httptest.NewRecorder()
	a.ServePage(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" || rec.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
		t.Errorf("page: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	a.ServeAsset(rec, httptest.NewRequest("GET", "/assets/nope.js", nil), "nope.js")
	if rec.Code != 404 {
		t.Errorf("unknown asset: %d", rec.Code)
	}
}

// TestPage_hasNoInlineScriptOrStyle: the CSP allows none, so any would
// silently not run.
func TestPage_hasNoInlineScriptOrStyle(t *testing.T) {
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	page := string(a.files[IndexFile].body)
	if regexp.MustCompile(`<script(\s[^>]*)?>[^<]+</script>`).MatchString(page) || strings.Contains(page, "<style") || strings.Contains(page, " style=") || strings.Contains(page, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Error("index.html has an inline script, style or event handler")
	}
	if js := string(a.files["app.js"].body); strings.Contains(js, "style=") || strings.Contains(js, "eval(") {
		t.Error("app.js writes a style attribute or evals")
	}
}
