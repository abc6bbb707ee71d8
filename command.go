package fstaid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-shellwords"
)

// parseCommandLine splits a command line into words the way the
// original fstaid did (go-shellwords: quotes and backslashes, no
// variables), and refuses shell operators (| ; & > <), which the
// original silently dropped with everything after them: a pipeline needs
// an explicit `sh -c '...'`. Command and Script use it.
func parseCommandLine(cmdline string) ([]string, error) {
	p := shellwords.NewParser()
	args, err := p.Parse(cmdline)
	if err != nil {
		return nil, fmt.Errorf("parsing command %q: %w", cmdline, err)
	}
	if p.Position >= 0 {
		return nil, fmt.Errorf("command %q contains a shell operator at byte %d; wrap it in sh -c '...'", cmdline, p.Position)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("command is empty")
	}
	return args, nil
}

// commandLine is a command line split as parseCommandLine splits it,
// with the reason it cannot run: what CommandCheck, ScriptHandler and
// ScriptNotifier hold.
type commandLine struct {
	args []string
	err  error
}

func newCommandLine(cmdline string) commandLine {
	args, err := parseCommandLine(cmdline)
	return commandLine{args: args, err: err}
}

// path is the executable, as the command line names it; "" when err.
func (c *commandLine) path() string {
	if len(c.args) == 0 {
		return ""
	}
	return c.args[0]
}

func (c *commandLine) String() string { return strings.Join(c.args, " ") }

// script runs the command line followed by args, with env added to this
// process's environment, as handler and notify commands run: its output
// (both streams) logged, a non-zero exit an error naming the executable
// and the status.
func (c *commandLine) script(ctx context.Context, args, env []string) error {
	if c.err != nil {
		return c.err
	}
	argv := append(append([]string(nil), c.args...), args...)
	status, err := runCommand(ctx, loggerFrom(ctx), argv, append(os.Environ(), env...), true)
	switch {
	case status == 0 && err == nil:
		return nil
	case err == nil:
		return fmt.Errorf("%s: exit status %d", c.args[0], status)
	}
	return fmt.Errorf("%s: exit status %d: %w", c.args[0], status, err)
}

// maxLoggedOutput bounds how much of one command's output is logged; the
// rest is drained and counted.
const maxLoggedOutput = 64 << 10

// maxLineLength bounds one logged line.
const maxLineLength = 4 << 10

// outputGrace is how long, after the process group was killed, the
// drains wait for the pipes to close (a setsid'd grandchild can hold them
// open forever).
const outputGrace = 500 * time.Millisecond

// runCommand runs args in a new process group and returns its exit status
// as handlers see it: the exit status; -1 when killed by a signal (the
// timeout's SIGKILL included); 127 when it cannot start. err explains a
// non-zero status beyond the number itself (a signal, a deadline, a start
// failure); it is nil for a plain exit, so that messages do not say
// "exit status 7: exit status 7". Output goes to logger, bounded.
func runCommand(ctx context.Context, logger *slog.Logger, args, env []string, logStdout bool) (int, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	if env != nil {
		cmd.Env = env
	}
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	var drains sync.WaitGroup
	var pipes []*os.File
	attach := func(stream string) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		pipes = append(pipes, r)
		drains.Add(1)
		go func() {
			defer drains.Done()
			drainLines(r, logger, stream)
		}()
		return w, nil
	}
	var writers []*os.File
	closeWriters := func() {
		for _, w := range writers {
			w.Close()
		}
		writers = nil
	}
	stop := func() {
		// Closing our copies of the write ends lets the drains see EOF
		// once every process holding them is gone; the deadline covers
		// processes that escaped the group.
		closeWriters()
		for _, r := range pipes {
			r.SetReadDeadline(time.Now().Add(outputGrace))
		}
		drains.Wait()
		for _, r := range pipes {
			r.Close()
		}
	}
	if logStdout {
		w, err := attach("stdout")
		if err != nil {
			stop()
			return 127, fmt.Errorf("creating pipe: %w", err)
		}
		writers = append(writers, w)
		cmd.Stdout = w
	}
	w, err := attach("stderr")
	if err != nil {
		stop()
		return 127, fmt.Errorf("creating pipe: %w", err)
	}
	writers = append(writers, w)
	cmd.Stderr = w

	if err := cmd.Start(); err != nil {
		stop()
		if ctx.Err() != nil {
			return -1, fmt.Errorf("not started: %w", ctx.Err())
		}
		return 127, fmt.Errorf("starting %s: %w", args[0], err)
	}
	closeWriters()
	waitErr := cmd.Wait()
	// Whatever the command left behind in its group dies with it.
	killGroup(cmd.Process.Pid)
	stop()

	if waitErr == nil {
		return 0, nil
	}
	// The context decides, not the error text: a command cancelled by its
	// deadline reports -1 whatever status the kill produced.
	if ctx.Err() != nil {
		return -1, fmt.Errorf("killed: %w", ctx.Err())
	}
	var exitErr *exec.ExitError
	if !errors.As(waitErr, &exitErr) {
		return 127, waitErr
	}
	if exitErr.Exited() {
		return exitErr.ExitCode(), nil
	}
	// ExitCode is -1 for a process killed by a signal.
	return exitErr.ExitCode(), waitErr
}

// drainReadSize is drainLines' read buffer: one line's worth. A check's
// output is usually a few bytes; a larger buffer would only be garbage
// made twice per command run (issue 17), and a chatty command is read
// in more, smaller reads with the same result.
const drainReadSize = maxLineLength

// drainLines reads r to the end, logging at most maxLoggedOutput bytes in
// lines of at most maxLineLength, and counting the rest.
func drainLines(r io.Reader, logger *slog.Logger, stream string) {
	buf := make([]byte, drainReadSize)
	var line []byte
	logged, dropped := 0, 0
	emit := func() {
		if len(line) == 0 {
			return
		}
		if logged < maxLoggedOutput {
			logger.Info("output", "stream", stream, "line", string(line))
		} else {
			dropped += len(line)
		}
		logged += len(line)
		line = line[:0]
	}
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			part := chunk
			if i >= 0 {
				part = chunk[:i]
			}
			room := maxLineLength - len(line)
			if len(part) > room {
				dropped += len(part) - room
				part = part[:room]
			}
			line = append(line, part...)
			if i < 0 {
				break
			}
			emit()
			chunk = chunk[i+1:]
		}
		if err != nil {
			break
		}
	}
	emit()
	if dropped > 0 {
		logger.Info("output truncated", "stream", stream, "dropped_bytes", dropped)
	}
}
