package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

func TestUnlockCommand(t *testing.T) {
	e := newEnv(t, 0, "")
	if code, out := runCmd(t, "unlock", "-config", e.config); code != 0 || !strings.Contains(out, "nothing to unlock") {
		t.Errorf("unlock without a record = %d: %s", code, out)
	}
	rec := &fstaid.Record{State: fstaid.RecordDone, Host: "mon1", PID: 42, Time: time.Now(), Event: &fstaid.Event{Reason: fstaid.ReasonAuto, Target: "db1"}}
	if err := fstaid.NewFileLock(e.lockPath()).Acquire(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	code, out := runCmd(t, "unlock", "-config", e.config)
	if code != 1 || !strings.Contains(out, "mon1") || !strings.Contains(out, "roles are swapped") || !strings.Contains(out, "Not removed") {
		t.Errorf("unlock without -yes = %d:\n%s", code, out)
	}
	if _, err := os.Stat(e.lockPath()); err != nil {
		t.Fatal("unlock without -yes removed the record")
	}
	if code, out := runCmd(t, "unlock", "-config", e.config, "-yes"); code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("unlock -yes = %d:\n%s", code, out)
	}
	if _, err := os.Stat(e.lockPath()); !os.IsNotExist(err) {
		t.Error("the record is still there")
	}
}
