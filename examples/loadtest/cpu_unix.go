//go:build unix

package main

import (
	"fmt"
	"net/http"
	"syscall"
)

// cpuTime writes the user and system CPU time of the process, in
// microseconds.
func cpuTime(w http.ResponseWriter, _ *http.Request) {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, u.Utime.Nano()/1000+u.Stime.Nano()/1000)
}
