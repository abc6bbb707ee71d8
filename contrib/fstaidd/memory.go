package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/fstaid/fstaid"
)

// fstaidd's memory (issue 17). One monitor per target is the usual
// deployment, so what one idle daemon holds is multiplied on a host.
//
// The heap: a healthy daemon keeps ~1 MiB live; the Go default (GOGC=100,
// and a 4 MiB minimum goal) lets it grow to 4 MiB between collections.
// defaultGCPercent halves that headroom; a collection of a 1 MiB heap
// costs well under a millisecond of CPU. GOGC and GOMEMLIMIT in the
// environment are honoured as the Go runtime documents them (the unit
// file can set Environment=GOGC=100 to get the Go default back).
//
// The binary's pages: every linked package's init (the AWS SDK's endpoint
// tables, etcd's and grpc's protobuf descriptors, prometheus' collectors)
// and the start-up's one-time code touch most of the executable, and the
// kernel maps 64 KiB around every touched page. releaseStartupPages lets
// go of those mappings once monitoring runs (see its doc).

// defaultGCPercent is fstaidd's GOGC unless the environment sets one.
const defaultGCPercent = 50

// keepPagesEnv, set to 1, keeps the start-up pages mapped (diagnosis:
// compare RSS with and without the release).
const keepPagesEnv = "FSTAIDD_KEEP_STARTUP_PAGES"

// tuneGC applies defaultGCPercent unless getenv("GOGC") is set (the
// runtime has then applied it). It returns the GC percent in force.
func tuneGC(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

// pageReleaser calls releaseStartupPages once, on the first notice that
// the start-up is over (the monitor armed, or unarmed after its start-up
// check): an observer, so it runs on the monitor's goroutine between
// rounds.
type pageReleaser struct {
	once   sync.Once
	logger *slog.Logger
	keep   bool
}

func newPageReleaser(logger *slog.Logger, getenv func(string) string) *pageReleaser {
	return &pageReleaser{logger: logger, keep: getenv(keepPagesEnv) == "1"}
}

// observe is a fstaid.WithObserver function.
func (p *pageReleaser) observe(n fstaid.Notice) {
	if p.keep || (n.State != fstaid.StateArmed && n.State != fstaid.StateUnarmed) {
		return
	}
	p.once.Do(func() {
		before := rssFile()
		released, err := releaseStartupPages()
		if err != nil {
			p.logger.Warn("releasing the start-up pages of the binary", "error", err)
			return
		}
		p.logger.Debug("released the start-up pages of the binary", "mapped_bytes", released,
			"rss_file_before", before, "rss_file_after", rssFile())
	})
}

// rssFile is RssFile from /proc/self/status, or "" where there is none.
func rssFile() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
