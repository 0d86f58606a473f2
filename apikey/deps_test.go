package apikey_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLibraryDependencies keeps database drivers and test libraries out of a
// user's build: the non-test dependencies of the library packages are the
// standard library and the modules listed here, nothing else.
func TestLibraryDependencies(t *testing.T) {
	allowed := []string{
		"github.com/keystile/keystile/",
		"golang.org/x/crypto/",
		"golang.org/x/net/",
		"golang.org/x/sys/",
		"golang.org/x/sync/",
		"github.com/hashicorp/golang-lru/v2",
		"github.com/rs/cors",
	}
	out, err := exec.Command("go", "list", "-deps",
		"github.com/keystile/keystile/apikey",
		"github.com/keystile/keystile/middleware/...",
		"github.com/keystile/keystile/storage",
		"github.com/keystile/keystile/storage/memory",
		"github.com/keystile/keystile/storage/sqlstore/...",
	).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, pkg := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(pkg, "/")
		if !strings.Contains(first, ".") || strings.HasPrefix(pkg, "vendor/") {
			continue // standard library
		}
		ok := false
		for _, prefix := range allowed {
			ok = ok || strings.HasPrefix(pkg, prefix)
		}
		if !ok {
			t.Errorf("library packages depend on %s", pkg)
		}
	}
}
