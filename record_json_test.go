package fstaid_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// Issue 15: a manual failover's record leaves out the times of the checks
// that never ran (no "start": "0001-01-01T00:00:00Z", no "duration_ns":
// 0), an automatic one keeps them; the handlers' environment is the
// original's either way.
func TestRecordLeavesOutChecksThatNeverRan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}), fstaid.WithTarget("db1"))
		rec, err := m.Fail(t.Context(), fstaid.WithExitCode(4), fstaid.WithRequestedBy("alice"))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(rec)
		var raw struct {
			Event struct {
				Primary, Secondary map[string]any
			}
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		for name, res := range map[string]map[string]any{"primary": raw.Event.Primary, "secondary": raw.Event.Secondary} {
			if _, ok := res["start"]; ok {
				t.Errorf("manual record: %s has a start time: %s", name, data)
			}
			if _, ok := res["duration_ns"]; ok {
				t.Errorf("manual record: %s has a duration: %s", name, data)
			}
			if res["exit_status"] != 4.0 {
				t.Errorf("manual record: %s exit_status %v, want the requested 4", name, res["exit_status"])
			}
		}
		env := h.events[0].Env()
		want := []string{"FSTAID_REASON=manual", "FSTAID_TARGET=db1", "FSTAID_REQUESTED_BY=alice",
			"FSTAID_PRIMARY_EXIT=4", "FSTAID_PRIMARY_TIMED_OUT=false", "FSTAID_SECONDARY_EXIT=4", "FSTAID_SECONDARY_TIMED_OUT=false"}
		env = slices.DeleteFunc(env, func(s string) bool { return strings.HasPrefix(s, "FSTAID_TIME=") })
		slices.Sort(env)
		slices.Sort(want)
		if !slices.Equal(env, want) {
			t.Errorf("manual handler env = %q, want %q", env, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: sleepThen(100*time.Millisecond, errors.New("down"))}, time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithStartupCheck(fstaid.StartupCheckOff), fstaid.WithMaxAttempts(1))
		if err := <-runAsync(t.Context(), m); !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want a failover", err)
		}
		data, _ := json.Marshal(m.Status().Record)
		var raw struct {
			Event struct {
				Primary, Secondary map[string]any
			}
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		if raw.Event.Primary["start"] == nil || raw.Event.Primary["duration_ns"] != 1e8 {
			t.Errorf("automatic record: the primary check's times are missing: %s", data)
		}
		if _, ok := raw.Event.Secondary["start"]; ok {
			t.Errorf("automatic record: the unconfigured secondary check has a start time: %s", data)
		}
	})
}
