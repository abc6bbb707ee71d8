// Command initheap measures what linking a package costs before main runs:
// the heap its package initialisers allocate and keep (issue 17). It
// imports what fstaidd links; the build tags leave parts out:
//
//	go run ./contrib/bench/initheap                      # aws, etcd, prometheus
//	go run -tags noaws ./contrib/bench/initheap          # without contrib/aws
//	go run -tags "noaws noetcd" ./contrib/bench/initheap # prometheus and the rest
//
// The figures are after two collections with fstaidd's GOGC=50: what is
// left is held by package-level variables (endpoint tables, protobuf
// descriptors, registries), which no setting of the daemon can release.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	_ "github.com/prometheus/client_golang/prometheus"
)

func main() {
	debug.SetGCPercent(50)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	fmt.Printf("linked: %s\n", linked)
	fmt.Printf("HeapAlloc %.2f MiB, HeapInuse %.2f MiB, StackInuse %.2f MiB, GCSys %.2f MiB\n",
		mib(ms.HeapAlloc), mib(ms.HeapInuse), mib(ms.StackInuse), mib(ms.GCSys))
	// What the process holds having done nothing but its inits.
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:"} {
				if strings.HasPrefix(line, k) {
					fmt.Println(strings.Join(strings.Fields(line), " "))
				}
			}
		}
	}
}
