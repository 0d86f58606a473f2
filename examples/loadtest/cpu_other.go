//go:build !unix

package main

import "net/http"

// cpuTime is not implemented where getrusage is not available.
func cpuTime(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "CPU time is not available on this system", http.StatusNotImplemented)
}
