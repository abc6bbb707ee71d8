package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many asking at once: concurrent POST /fail, a client that gives up,
// two monitors on one lock. One failover, whoever wins.

// Scenario 7: 100 concurrent POST /fail. While the loop is failing over,
// every request gets 409 with the record and the handler runs once; with
// a healthy target, exactly one request fails over and 99 get 409.
func TestScenario07ConcurrentFail(t *testing.T) {
	needHarness(t)
	const n = 100
	post := func(d *daemon) []int {
		codes := make([]int, n)
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := d.request("POST", "/fail")
				if err != nil {
					codes[i], bodies[i] = -1, []byte(err.Error())
					return
				}
				codes[i], bodies[i] = code, body
			}()
		}
		wg.Wait()
		for i, code := range codes {
			if code == http.StatusConflict || code == http.StatusOK {
				var fr failResponse
				if err := json.Unmarshal(bodies[i], &fr); err != nil || fr.Record == nil {
					t.Errorf("POST /fail %d: %d with body %s: want the record", i, code, bodies[i])
				}
			}
		}
		return codes
	}
	count := func(codes []int, want int) int {
		k := 0
		for _, c := range codes {
			if c == want {
				k++
			}
		}
		return k
	}

	t.Run("while-the-loop-fails-over", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(2*time.Second, 0)
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 1\n", primaryCurl+secondaryCurl))
		tp.target.stop()
		waitFor(t, 15*time.Second, "the loop's handler to start", func() bool {
			_, err := os.Stat(filepath.Join(s.calls, "call.1"))
			return err == nil
		})
		codes := post(d)
		if k := count(codes, http.StatusConflict); k != n {
			t.Errorf("%d of %d concurrent POST /fail got 409, want all (codes %v)", k, n, codes)
		}
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "7", "false", "22", "false")
		wantDoneRecord(t, s, d, "auto")
	})
	t.Run("client-disconnects", func(t *testing.T) {
		// A client that gives up must not cut the failover in half.
		newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(1500*time.Millisecond, 0)
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", d.base+"/fail", nil)
		req.SetBasicAuth(authUser, authPass)
		if resp, err := d.client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("POST /fail answered %d within 300ms, before a 1.5s handler finished", resp.StatusCode)
		}
		wantExit(t, d, 20*time.Second, exitFailedOver)
		if c := s.oneCall(); !c.finished {
			t.Errorf("the handler was cut short when the client disconnected")
		}
		wantDoneRecord(t, s, d, "manual")
	})
	t.Run("two-monitors-one-lock", func(t *testing.T) {
		// Two fstaidd watch the same target with the same lock file
		// (same port, so the same fstaid.<port>.lock; different listen
		// addresses): both see it die, one takes the lock, the handler
		// runs once.
		tp := newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(500*time.Millisecond, 0)
		cfg1 := s.writeConfig("interval = 0.1\nmaxattempts = 1\n", primaryCurl)
		cfg2 := filepath.Join(s.dir, "second", "fstaidd.toml")
		os.MkdirAll(filepath.Dir(cfg2), 0o755)
		b, _ := os.ReadFile(cfg1)
		writeFile(t, cfg2, strings.Replace(string(b), "[global]\n", "[global]\nlisten = \"127.0.0.1:8081\"\n", 1))
		d1 := armed(t, cfg1)
		d2 := startDaemon(t, "monitor", cfg2)
		d2.base = "http://127.0.0.1:8081"
		d2.waitReady()
		d2.waitStatus(15*time.Second, "the second monitor armed", func(st *status) bool { return st.State == "armed" })
		tp.target.stop()
		c1, c2 := d1.wait(t, 20*time.Second), d2.wait(t, 20*time.Second)
		if (c1 == exitFailedOver) == (c2 == exitFailedOver) {
			t.Errorf("exit statuses %d and %d: want exactly one monitor to fail over (10)", c1, c2)
		}
		if c1 != exitFailedOver && c1 != exitLocked || c2 != exitFailedOver && c2 != exitLocked {
			t.Errorf("exit statuses %d and %d: the one that lost the lock should report it (12)", c1, c2)
		}
		s.oneCall()
		if r := s.readRecord(); r.State != "done" || (r.PID != d1.cmd.Process.Pid && r.PID != d2.cmd.Process.Pid) {
			t.Errorf("record = %+v, want done by one of the two", r)
		}
	})
	t.Run("racing-each-other", func(t *testing.T) {
		newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(500*time.Millisecond, 0)
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl))
		codes := post(d)
		if ok, conflict := count(codes, http.StatusOK), count(codes, http.StatusConflict); ok != 1 || conflict != n-1 {
			t.Errorf("concurrent POST /fail: %d got 200 and %d got 409, want 1 and %d (codes %v)", ok, conflict, n-1, codes)
		}
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "1", "false", "1", "false")
		wantEnv(t, c, "FSTAID_REASON", "manual")
		wantDoneRecord(t, s, d, "manual")
	})
}
