package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

func TestLogFileReopenedOnSIGHUP(t *testing.T) {
	e := newEnv(t, 0, "")
	logPath := filepath.Join(e.dir, "fstaidd.log")
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(data), "[global]\n", "[global]\nlog = \""+logPath+"\"\nmode = \"debug\"\n", 1)), 0o644)
	data, _ = os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(data), "mode = \"release\"\n", "", 1)), 0o644)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, 5*time.Second, func() error {
		if fi, err := os.Stat(logPath); err != nil || fi.Size() == 0 {
			return fmt.Errorf("no new log file after SIGHUP: %v", err)
		}
		return nil
	})
	if old, _ := os.ReadFile(rotated); !strings.Contains(string(old), "serving") {
		t.Errorf("rotated log lacks the start-up lines")
	}
}
