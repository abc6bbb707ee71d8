package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// pty is a real pseudo-terminal: tty is what fstaidd gets as stdin or
// stderr, the test reads what it wrote and types from the other side.
type pty struct {
	master, tty *os.File
	out         chan []byte // everything written to tty, once it is closed
}

func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	p := &pty{master: m, tty: tty, out: make(chan []byte, 1)}
	go func() {
		var b bytes.Buffer
		io.Copy(&b, m) // ends with EIO once tty is closed
		p.out <- bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), []byte("\n"))
	}()
	t.Cleanup(func() {
		tty.Close()
		m.Close()
	})
	return p
}

// output closes the terminal side and returns what was written to it.
func (p *pty) output() string {
	p.tty.Close()
	return string(<-p.out)
}

// Issue 15: a config with several problems is shown one problem per line
// on a terminal, and as one log line elsewhere (the journal, a file).
func TestConfigErrorOnePerLineOnTerminal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	config := filepath.Join(t.TempDir(), "fstaidd.toml")
	os.WriteFile(config, []byte("[global]\nport = 8080\nmaxattempt = 2\n[handler]\ncomand = \"/bin/true\"\ntimeout = 1\n[primary]\ncommand = \"true\"\ntimeout = 1\n[secondry]\n"), 0o644)
	want := []string{
		"4 problems:",
		`  * [global] maxattempt: unknown key (did you mean "maxattempts"?)`,
		"  * [handler] command: is required",
		`  * [handler] comand: unknown key (did you mean "command"?)`,
		`  * top level secondry: unknown key (did you mean "secondary"?)`,
	}

	p := openPTY(t)
	if code := Run(context.Background(), []string{"-config", config}, strings.NewReader(""), io.Discard, p.tty); code != exitConfig {
		t.Errorf("exit %d, want %d", code, exitConfig)
	}
	out := p.output()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Errorf("on a terminal: %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("on a terminal, no line %q:\n%s", w, out)
		}
	}

	var log bytes.Buffer
	if code := Run(context.Background(), []string{"-config", config}, strings.NewReader(""), io.Discard, &log); code != exitConfig {
		t.Errorf("exit %d, want %d", code, exitConfig)
	}
	if n := strings.Count(strings.TrimSpace(log.String()), "\n"); n != 0 || !strings.Contains(log.String(), `4 problems:\n  * [global] maxattempt`) {
		t.Errorf("not on a terminal: want one log line holding every problem, got:\n%s", log.String())
	}
}
