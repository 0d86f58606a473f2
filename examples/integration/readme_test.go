package integration_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goBlock matches a fenced Go block of a Markdown file.
var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestReadmeSnippetsCompile compiles every Go block of the README, each as
// a package of its own in a throwaway module that requires what the
// examples module requires (so nothing is downloaded) with the library
// replaced by this checkout. A block is a whole file: a program, a
// library package or a test file.
func TestReadmeSnippetsCompile(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	blocks := goBlock.FindAllStringSubmatch(string(readme), -1)
	require.GreaterOrEqual(t, len(blocks), 4, "the README's Go blocks")

	examplesMod, err := os.ReadFile(filepath.Join(root, "examples", "go.mod"))
	require.NoError(t, err)
	gosum, err := os.ReadFile(filepath.Join(root, "examples", "go.sum"))
	require.NoError(t, err)
	mod := strings.Replace(string(examplesMod), "module github.com/keystile/keystile/examples", "module readme.example", 1)
	mod = strings.Replace(mod, "=> ../", "=> "+root, 1)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644))
	for i, b := range blocks {
		src := b[1]
		require.True(t, strings.HasPrefix(src, "package "), "README Go block %d is not a whole file:\n%s", i+1, src)
		name := "snippet.go"
		if strings.Contains(src, "func Test") {
			name = "snippet_test.go"
		}
		pkg := filepath.Join(dir, "block"+string(rune('a'+i)))
		require.NoError(t, os.MkdirAll(pkg, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(pkg, name), []byte(src), 0o644))
	}
	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's Go blocks do not compile (blocka is the first):\n%s", out)
}
