package fstaid

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

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

// sysRenameat2 is renameat2's system call number, which package syscall
// lacks on several architectures (amd64 among them); 0 where unknown.
var sysRenameat2 = map[string]uintptr{
	"386": 353, "amd64": 316, "arm": 382, "arm64": 276, "loong64": 276,
	"mips": 4351, "mipsle": 4351, "mips64": 5311, "mips64le": 5311,
	"ppc64": 357, "ppc64le": 357, "riscv64": 276, "s390x": 347,
}[runtime.GOARCH]

// renameNoReplaceFlag is RENAME_NOREPLACE from linux/fs.h.
const renameNoReplaceFlag = 1

// renameNoReplace renames oldpath to newpath only if newpath does not
// exist (renameat2 with RENAME_NOREPLACE, Linux 3.15+). An existing
// newpath fails with EEXIST; a kernel or file system without the flag
// fails with EINVAL or ENOSYS.
func renameNoReplace(oldpath, newpath string) error {
	if sysRenameat2 == 0 {
		return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: syscall.ENOSYS}
	}
	o, err := syscall.BytePtrFromString(oldpath)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: err}
	}
	n, err := syscall.BytePtrFromString(newpath)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: err}
	}
	fdcwd := -100 // AT_FDCWD: relative paths start at the working directory
	_, _, errno := syscall.Syscall6(sysRenameat2, uintptr(fdcwd), uintptr(unsafe.Pointer(o)),
		uintptr(fdcwd), uintptr(unsafe.Pointer(n)), renameNoReplaceFlag, 0)
	if errno != 0 {
		return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: errno}
	}
	return nil
}
