package fstaid

import "syscall"

// File system magic numbers from linux/magic.h.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// volatileFS reports whether dir is on a file system that does not
// survive a reboot.
func volatileFS(dir string) (string, bool) {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "", false
	}
	switch uint64(st.Type) {
	case tmpfsMagic:
		return "tmpfs", true
	case ramfsMagic:
		return "ramfs", true
	}
	return "", false
}
