package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

// The original fstaid v0.1.7 with the same configuration, 60 s into
// healthy monitoring, on the machine of issue 17 (the figures the issue
// gives; its binary is not in this repository).
const originalFigures = "| original fstaid v0.1.7 (figures of issue 17) | — | **9.96** | **3.3** | 6.7 | — | — | — | — | — | — | — | 0.29 without the curl children |"

// originalConfig is the original fstaid's format (fstaid.toml): curl
// self, primary and secondary checks of one loopback target, interval
// 1 s, three attempts 0.1 s apart; lockdir and the target's name are
// fstaidd's only additions. aws, when set, is appended.
func originalConfig(target, aws string) func(port int, lockDir, handler string) string {
	return func(port int, lockDir, handler string) string {
		curl := fmt.Sprintf("curl -s -f %s", target)
		return fmt.Sprintf(`[global]
port = %d
interval = 1
maxattempts = 3
attempt_interval = 0.1
mode = "release"
lockdir = %q
target = "bench"

[handler]
command = %q
timeout = 300

[primary]
command = %q
timeout = 3

[secondary]
command = %q
timeout = 3

[self]
command = %q
timeout = 3
`, port, lockDir, handler, curl, curl, curl) + aws
	}
}

// memSample is one reading of a process's memory, in bytes.
type memSample struct {
	rounds                         uint64
	rss, anon, file, pss           int64
	text, rodata, data, heap, rest int64 // from smaps, by mapping
}

// readMem reads /proc/PID/status, smaps_rollup and smaps: the binary's
// code (r-x), its read-only data (r--: rodata, pclntab) and its data
// segment (rw-, file-backed or not), the Go heap arena (the largest
// anonymous mapping) and the rest of the anonymous memory (the runtime's
// own structures, the bss, the main thread's stack).
func readMem(pid int) (memSample, error) {
	var m memSample
	st, err := procMem(pid)
	if err != nil {
		return m, err
	}
	m.rss, m.anon, m.file = st["VmRSS"], st["RssAnon"], st["RssFile"]
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Pss:"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				m.pss = n << 10
			}
		}
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	var perms, path string
	var anonMax int64
	s := bufio.NewScanner(f)
	for s.Scan() {
		fl := strings.Fields(s.Text())
		if len(fl) == 0 {
			continue
		}
		if !strings.HasSuffix(fl[0], ":") {
			perms, path = fl[1], ""
			if len(fl) >= 6 {
				path = strings.Join(fl[5:], " ")
			}
			continue
		}
		if fl[0] != "Rss:" || len(fl) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fl[1], 10, 64)
		n <<= 10
		switch {
		case path == exe && strings.HasPrefix(perms, "r-x"):
			m.text += n
		case path == exe && strings.HasPrefix(perms, "r--"):
			m.rodata += n
		case path == exe:
			m.data += n
		case path == "" || path == "[stack]" || path == "[heap]":
			m.rest += n
			anonMax = max(anonMax, n)
		default: // vdso, vvar
		}
	}
	m.heap, m.rest = anonMax, m.rest-anonMax
	return m, s.Err()
}

// footprintOriginal runs fstaidd with an original-format configuration
// (issue 17), cfg.origRuns times one after the other, and reports its
// memory cfg.origWait into healthy monitoring, then again right after one
// GET /metrics (a Prometheus scrape): with the AWS handlers and etcd
// compiled in but not configured, and with [aws] configured (one Elastic
// IP handler on a local fake EC2).
func footprintOriginal(ctx context.Context, cfg *config, bin string) error {
	tgt, err := newTarget()
	if err != nil {
		return err
	}
	defer tgt.srv.Close()
	fake := ec2fake.New()
	defer fake.Close()
	fake.AddSubnet(ec2fake.Subnet{ID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", CIDR: "10.0.1.0/24"})
	for _, id := range []string{"i-active", "i-standby"} {
		fake.AddInstance(ec2fake.Instance{ID: id, AZ: "us-east-1a", SubnetID: "subnet-a", VPCID: "vpc-1"})
	}
	fake.AddAddress(ec2fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10"})
	awsSection := `
[aws]
region = "us-east-1"
endpoint = "` + fake.URL + `"

[[aws.elastic_ip]]
name = "web-eip"
allocation_id = "eipalloc-1"
instance_id = "i-standby"
`
	// Credentials from the environment only; no IMDS, no shared files.
	awsEnv := []string{"AWS_ACCESS_KEY_ID=AKIDBENCH", "AWS_SECRET_ACCESS_KEY=bench", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	variants := []struct {
		name string
		aws  string
		env  []string
	}{
		{"AWS, etcd compiled in, not configured", "", nil},
		{"[aws] configured (one Elastic IP handler)", awsSection, awsEnv},
	}
	w := cfg.out
	fmt.Fprintf(w, "\n### 3d. Original-format configuration (issue 17)\n\n")
	fmt.Fprintf(w, "The original fstaid's fstaid.toml: curl self, primary and secondary checks of one loopback HTTP target, interval 1 s, "+
		"maxattempts 3, attempt_interval 0.1; the %s binary built as the .deb builds it. Each run is a fresh daemon, runs one after the other; "+
		"memory %v into healthy monitoring, then right after one GET /metrics. MiB; text = the binary's code mapped, rodata = its read-only data "+
		"(type data, pclntab), heap = the Go heap arena (heap and goroutine stacks), other anon = the runtime's own structures, bss, written data. "+
		"CPU includes the curl children.\n\n", binSize(bin), cfg.origWait)
	fmt.Fprintf(w, "| variant | run | VmRSS | RssAnon | RssFile | PSS | text | rodata | heap | other anon | VmRSS / RssFile after a /metrics scrape | rounds | CPU %% of a core |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintln(w, originalFigures)
	for vi, v := range variants {
		for run := 1; run <= cfg.origRuns && ctx.Err() == nil; run++ {
			dir := filepath.Join(cfg.workDir, fmt.Sprintf("original-%d-%d", vi, run))
			d, err := startDaemon(ctx, bin, dir, daemonSpec{config: originalConfig(tgt.url(), v.aws), env: v.env})
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			pid := d.cmd.Process.Pid
			cpu0, _ := procCPU(pid)
			t0 := time.Now()
			select {
			case <-ctx.Done():
				d.stop()
				return ctx.Err()
			case <-d.done:
				d.stop()
				return fmt.Errorf("%s: fstaidd exited (%d): %s", v.name, d.exit, tail(filepath.Join(d.dir, "fstaidd.log")))
			case <-time.After(cfg.origWait):
			}
			cpu1, _ := procCPU(pid)
			el := time.Since(t0)
			m, err := readMem(pid)
			if err != nil {
				d.stop()
				return err
			}
			st, err := d.status()
			if err != nil || st.State != "armed" {
				d.stop()
				return fmt.Errorf("%s: not armed after %v: %+v %v: %s", v.name, cfg.origWait, st, err, tail(filepath.Join(d.dir, "fstaidd.log")))
			}
			if _, err := d.metrics("go_goroutines"); err != nil {
				d.stop()
				return err
			}
			after, err := readMem(pid)
			d.stop()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "| %s | %d | **%s** | **%s** | %s | %s | %s | %s | %s | %s | %s / %s | %d | %.2f |\n", v.name, run,
				mib(m.rss), mib(m.anon), mib(m.file), mib(m.pss), mib(m.text), mib(m.rodata), mib(m.heap), mib(m.rest),
				mib(after.rss), mib(after.file), st.Rounds, 100*float64(cpu1-cpu0)/float64(el))
		}
	}
	return nil
}
