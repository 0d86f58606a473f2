// Package chromiumtest starts Debian's headless Chromium for the examples'
// browser tests. It is test support for this repository only.
package chromiumtest

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Path is where Debian's chromium package installs the browser.
const Path = "/usr/bin/chromium"

// New starts headless Chromium with the flags this machine needs (no
// sandbox as root, no background connections to the closed network), plus
// extra, and returns its context, closed when the test ends. Without
// Chromium the test fails under CI=true (scripts/test.sh installs it) and
// skips otherwise, saying how to install it.
func New(t *testing.T, ctx context.Context, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: scripts/test.sh installs it (apt-get install chromium)", Path)
		}
		t.Skipf("%s is missing: run ./scripts/test.sh, which installs Debian's chromium package, or apt-get install chromium", Path)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(opts, extra...)...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	require.NoError(t, chromedp.Do(browserCtx), "starting %s", Path)
	return browserCtx
}
