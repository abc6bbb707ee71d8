package main

import "golang.org/x/sys/unix"

// isTerminal reports whether f (an *os.File) is a terminal: a prompt
// may wait for its answer, and a message may span lines.
func isTerminal(f any) bool {
	fd, ok := f.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(fd.Fd()), unix.TCGETS)
	return err == nil
}
