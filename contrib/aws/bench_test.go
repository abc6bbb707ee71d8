package aws

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkFailover runs each handler's move on the happy path against
// the local EC2 and reports the EC2 calls per failover (calls/op; the
// goal for an Elastic IP is 3: describe, associate, confirm) and, with
// the endpoint answering every request after a fixed latency, the
// handler's own time beyond the endpoint's (overhead-µs/op: the run's
// time minus the time the server spent on each request, injected
// latency included — SDK serialisation, signing, XML parsing, our
// bookkeeping, loopback HTTP).
func BenchmarkFailover(b *testing.B) {
	for _, k := range kinds {
		for _, latency := range []time.Duration{0, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/latency=%v", k.name, latency), func(b *testing.B) {
				fake, client := world(b)
				fake.SetLatency(latency)
				h := k.make(b, client, WithLogger(nil))
				ctx := ctxTimeout(b, time.Hour)
				var calls int
				var elapsed, served time.Duration
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					populate(fake)
					fake.ResetCalls()
					b.StartTimer()
					start := time.Now()
					if err := h.Handle(ctx, autoEvent); err != nil {
						b.Fatal(err)
					}
					elapsed += time.Since(start)
					for _, c := range fake.Calls() {
						calls++
						served += c.Served
					}
				}
				if !k.moved(fake) {
					b.Fatal("not moved")
				}
				n := float64(b.N)
				b.ReportMetric(float64(calls)/n, "calls/op")
				overhead := elapsed - served
				b.ReportMetric(float64(overhead.Microseconds())/n, "overhead-µs/op")
			})
		}
	}
}
