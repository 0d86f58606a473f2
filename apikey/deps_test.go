package apikey_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// libraryModules are the modules that keystile's library packages may
// import from.
var libraryModules = []string{
	"github.com/keystile/keystile",
	"github.com/hashicorp/golang-lru/v2",
	"github.com/rs/cors",
	"golang.org/x/crypto",
	"golang.org/x/net",
	"golang.org/x/sync",
	"golang.org/x/sys",
}

// TestLibraryDependencies keeps database drivers and test libraries out of a
// user's build: the non-test dependencies of the library packages are the
// standard library and libraryModules, nothing else.
func TestLibraryDependencies(t *testing.T) {
	// GOWORK=off: the library module alone, as a user's build sees it (the
	// patterns then leave out the modules nested in it, such as
	// storage/sqlstore/pgnotify, which users import by choice).
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}",
		"github.com/keystile/keystile/apikey",
		"github.com/keystile/keystile/middleware/...",
		"github.com/keystile/keystile/storage",
		"github.com/keystile/keystile/storage/memory",
		"github.com/keystile/keystile/storage/faultstore",
		"github.com/keystile/keystile/storage/sqlstore/...",
		"github.com/keystile/keystile/apikey/webhook",
		"github.com/keystile/keystile/apikey/events",
	) // storage/storetest imports testify, for the users' tests
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, module := range strings.Fields(string(out)) { // the standard library has none
		if !slices.Contains(libraryModules, module) {
			t.Errorf("library packages depend on module %s", module)
		}
	}
}

// userModule is the program of a service that imports every library
// package.
const userModule = `package main

import (
	_ "github.com/keystile/keystile/apikey"
	_ "github.com/keystile/keystile/middleware"
	_ "github.com/keystile/keystile/middleware/admin"
	_ "github.com/keystile/keystile/middleware/console"
	_ "github.com/keystile/keystile/storage"
	_ "github.com/keystile/keystile/storage/faultstore"
	_ "github.com/keystile/keystile/storage/memory"
	_ "github.com/keystile/keystile/storage/sqlstore"
	_ "github.com/keystile/keystile/storage/storetest"
	_ "github.com/keystile/keystile/apikey/webhook"
	_ "github.com/keystile/keystile/apikey/events"
)

func main() {}
`

// TestUserModuleGraph keeps the module graph of a service that uses
// keystile small: the examples and the tests that need a database or browser
// driver live in the examples module, so that no driver reaches the
// service's go.mod or go.sum. It builds such a service in a temporary module
// (keystile replaced by this checkout, no workspace), tidies it and lists
// its modules. It needs the module proxy, or a module cache that holds
// them.
func TestUserModuleGraph(t *testing.T) {
	allowed := append([]string{
		"golang.org/x/term", // x/crypto and x/net require it
		"golang.org/x/text", // x/net requires it
		// testify, which storage/storetest imports, and what testify
		// v1.12.1 requires (go mod graph).
		"github.com/stretchr/testify",
		"github.com/stretchr/objx",
		"go.yaml.in/yaml/v3",
	}, libraryModules...)
	forbidden := []string{"github.com/jackc/", "modernc.org/", "github.com/chromedp/"}

	root, err := filepath.Abs("..")
	require.NoError(t, err)
	dir := t.TempDir()
	goMod := "module example.com/service\n\ngo 1.26\n\n" +
		"require github.com/keystile/keystile v0.0.0\n\n" +
		"replace github.com/keystile/keystile => " + root + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(userModule), 0o644))
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		out, err := cmd.Output()
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), stderr)
		return string(out)
	}
	goCmd("mod", "tidy")
	modules := goCmd("list", "-m", "-f", "{{.Path}}", "all")
	for _, path := range strings.Fields(modules) {
		if path != "example.com/service" && !slices.Contains(allowed, path) {
			t.Errorf("a service that imports keystile has %s in its module graph (go list -m all)", path)
		}
	}
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	require.NoError(t, err)
	var inSum []string
	for line := range strings.Lines(string(sum)) {
		path, _, _ := strings.Cut(line, " ")
		for _, prefix := range forbidden {
			if strings.HasPrefix(path, prefix) && !slices.Contains(inSum, path) {
				inSum = append(inSum, path)
				t.Errorf("a service that imports keystile has %s in its go.sum", path)
			}
		}
	}
	if t.Failed() {
		t.Logf("go list -m all:\n%s", modules)
	}
}
