//go:build !linux

package fstaid

import (
	"errors"
	"os"
)

// volatileFS cannot tell here; the temporary-directory rule still applies.
func volatileFS(string) (string, bool) { return "", false }

// renameNoReplace has no portable equivalent outside Linux: where link(2)
// is refused, a FileLock there has no publish primitive.
func renameNoReplace(oldpath, newpath string) error {
	return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: errors.ErrUnsupported}
}
