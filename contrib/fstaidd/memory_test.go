package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// Without GOGC in the environment fstaidd collects at defaultGCPercent;
// with it, the environment's value stays in force.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	if got := tuneGC(func(string) string { return "" }); got != defaultGCPercent {
		t.Errorf("tuneGC without GOGC = %d, want %d", got, defaultGCPercent)
	}
	if p := debug.SetGCPercent(100); p != defaultGCPercent {
		t.Errorf("GC percent in force %d, want %d", p, defaultGCPercent)
	}
	env := func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	}
	if got := tuneGC(env); got != 100 {
		t.Errorf("tuneGC with GOGC=100 set = %d, want 100 (the runtime's)", got)
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percent in force %d, want 100", p)
	}
}

// written is in the data segment; the release must never touch it.
var written = []string{"before"}

// exeRss sums Rss of this test binary's read-only and writable mappings.
func exeRss(t *testing.T) (readOnly, writable int64) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var perms, path string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			perms, path = f[1], ""
			if len(f) >= 6 {
				path = strings.Join(f[5:], " ")
			}
			continue
		}
		if f[0] == "Rss:" && path == exe {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			if perms[1] == 'w' {
				writable += n << 10
			} else {
				readOnly += n << 10
			}
		}
	}
	return readOnly, writable
}

// The release unmaps the binary's code and read-only data that nothing
// uses now, and leaves the data segment as the program wrote it; the
// program runs on (its pages fault back in).
func TestReleaseStartupPages(t *testing.T) {
	written[0] = "after"
	ro0, rw0 := exeRss(t)
	released, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	ro1, rw1 := exeRss(t)
	t.Logf("advised %d bytes; read-only Rss %d → %d, writable %d → %d", released, ro0, ro1, rw0, rw1)
	if released == 0 || ro1 > ro0/2 {
		t.Errorf("read-only pages of the binary mapped: %d before, %d after the release, want at most half", ro0, ro1)
	}
	if written[0] != "after" {
		t.Errorf("a written variable reads %q after the release, want %q", written[0], "after")
	}
	if rw1 < rw0/2 {
		t.Errorf("writable mappings of the binary shrank from %d to %d: the release must not touch them", rw0, rw1)
	}
}

// The mappings released: private, read-only, of the executable, and with
// no anonymous page (a relocated RELRO segment keeps its pages).
func TestReadOnlyMappings(t *testing.T) {
	smaps := `00400000-00ba1000 r-xp 00000000 fe:00 10 /usr/bin/fstaidd
Rss:                6656 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00ba1000-0141c000 r--p 007a1000 fe:00 10 /usr/bin/fstaidd (deleted)
Anonymous:             0 kB
0141c000-01497000 rw-p 0101c000 fe:00 10 /usr/bin/fstaidd
Anonymous:           124 kB
01497000-01498000 r--p 0101c000 fe:00 10 /usr/bin/fstaidd
Anonymous:             4 kB
01498000-01499000 r--s 0101c000 fe:00 10 /usr/bin/fstaidd
Anonymous:             0 kB
7f0000000000-7f0000001000 r--p 00000000 fe:00 11 /usr/lib/other
Anonymous:             0 kB
7f0000001000-7f0000002000 r--p 00000000 00:00 0
Anonymous:             0 kB
`
	got, err := readOnlyMappings([]byte(smaps), "/usr/bin/fstaidd")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uintptr{{0x400000, 0xba1000}, {0xba1000, 0x141c000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("readOnlyMappings = %#x, want %#x", got, want)
	}
}

// The daemon lets go of the start-up pages once armed, unless
// FSTAIDD_KEEP_STARTUP_PAGES=1.
func TestDaemonReleasesStartupPagesWhenArmed(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run("keep="+strconv.FormatBool(keep), func(t *testing.T) {
			if keep {
				t.Setenv(keepPagesEnv, "1")
			} else {
				t.Setenv(keepPagesEnv, "")
			}
			e := newEnv(t, 0, "")
			faultInExecutable(t)
			ro0, _ := exeRss(t)
			r := e.start()
			st := r.waitState(t, fstaid.StateArmed)
			// Observers run on the monitor's goroutine, in order: two
			// rounds later the armed notice has been observed.
			waitFor(t, 10*time.Second, func() error {
				if n := r.waitState(t, fstaid.StateArmed).Rounds; n < st.Rounds+2 {
					return fmt.Errorf("%d rounds after arming, want 2", n-st.Rounds)
				}
				return nil
			})
			ro1, _ := exeRss(t)
			t.Logf("read-only Rss of the binary: %d before start, %d armed", ro0, ro1)
			if released := ro1 < ro0/2; released != !keep {
				t.Errorf("read-only Rss %d before start, %d once armed: released = %v, want %v", ro0, ro1, released, !keep)
			}
		})
	}
}

// faultInExecutable maps every page of the binary's read-only segments
// again (reading /proc/self/mem faults them in), as the start-up of a
// fresh process would, whatever earlier tests released.
func faultInExecutable(t *testing.T) {
	t.Helper()
	exe, _ := os.Readlink("/proc/self/exe")
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := readOnlyMappings(smaps, exe)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	buf := make([]byte, 1<<20)
	for _, r := range ranges {
		for off := r[0]; off < r[1]; off += uintptr(len(buf)) {
			n := min(uintptr(len(buf)), r[1]-off)
			if _, err := mem.ReadAt(buf[:n], int64(off)); err != nil {
				t.Fatalf("reading %#x: %v", off, err)
			}
		}
	}
}
