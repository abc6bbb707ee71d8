package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseStartupPages drops this process's mappings of its executable's
// read-only segments (code, read-only data, the pclntab) with
// madvise(MADV_DONTNEED), and returns the size of the ranges advised.
//
// Why: package inits and the start-up touch most of the binary once,
// and the pages stay mapped (RssFile) although monitoring uses a fraction
// of them. The advice only removes this process's page-table entries:
// the pages stay in the page cache, and the next use of one is a minor
// fault (the kernel maps 64 KiB around it again), so what remains mapped
// afterwards is what the daemon actually runs. It is safe only for
// private mappings whose pages are all the file's: a writable mapping
// (.data, .bss, the heap) is never advised, nor a read-only one holding
// anonymous pages (a RELRO segment a dynamic loader relocated, in a cgo
// or PIE build), which the advice would revert to the file's bytes.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("reading the mappings: %w", err)
	}
	ranges, err := readOnlyMappings(smaps, exe)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, r := range ranges {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r[0], r[1]-r[0], syscall.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("madvise %#x-%#x: %w", r[0], r[1], errno)
		}
		total += int64(r[1] - r[0])
	}
	return total, nil
}

// readOnlyMappings returns the [start, end) ranges of smaps (the format
// of /proc/PID/smaps) that map the file exe privately and read-only and
// hold no anonymous page.
func readOnlyMappings(smaps []byte, exe string) ([][2]uintptr, error) {
	var out [][2]uintptr
	var cur *[2]uintptr // the candidate mapping being read
	s := bufio.NewScanner(bytes.NewReader(smaps))
	for s.Scan() {
		line := s.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok && cur != nil {
			if strings.TrimSpace(v) != "0 kB" {
				cur = nil
			}
			continue
		}
		if strings.HasSuffix(f[0], ":") {
			continue // a field of the current mapping
		}
		// A mapping's header: start-end perms offset dev inode [path].
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
		if len(f) < 6 {
			continue
		}
		path := strings.TrimSuffix(strings.Join(f[5:], " "), " (deleted)")
		perms := f[1]
		if path != exe || len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("bad line in /proc/self/smaps: %q", line)
		}
		cur = &[2]uintptr{uintptr(start), uintptr(end)}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out, s.Err()
}
