//go:build !linux

package fstaid

// volatileFS cannot tell here; the temporary-directory rule still applies.
func volatileFS(string) (string, bool) { return "", false }
