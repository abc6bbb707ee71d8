package fstaid

import (
	"bytes"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
)

// A check's output is usually a few bytes: draining it must not allocate
// a buffer sized for the worst case on every run (issue 17: two 32 KiB
// buffers per command run were most of a healthy round's garbage).
func TestDrainLinesShortOutputAllocatesLittle(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	const runs = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		drainLines(strings.NewReader("ok\n"), logger, "stdout")
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	if perRun > 8<<10 {
		t.Errorf("draining %q allocates %d bytes per run, want at most %d", "ok\n", perRun, 8<<10)
	}
}

// Lines longer than one read are still logged whole up to maxLineLength,
// however the reads split them.
func TestDrainLinesLongLinesAcrossReads(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	long := strings.Repeat("x", maxLineLength+100)
	in := "first\n" + strings.Repeat("y", maxLineLength-10) + "\n" + long + "\nlast"
	drainLines(io.MultiReader(strings.NewReader(in[:7]), strings.NewReader(in[7:])), logger, "stderr")
	out := logs.String()
	for _, want := range []string{`"line":"first"`, `"line":"` + strings.Repeat("y", maxLineLength-10) + `"`,
		`"line":"` + strings.Repeat("x", maxLineLength) + `"`, `"line":"last"`, `"dropped_bytes":100`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %.80q…; log:\n%.400s", want, out)
		}
	}
}
