package systemd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestListenersNotActivated(t *testing.T) {
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	ls, err := Listeners()
	if err != nil || ls == nil || len(ls) != 0 {
		t.Errorf("Listeners() = %v, %v; want an empty map, nil", ls, err)
	}
}

func TestListenersForAnotherPid(t *testing.T) {
	// Variables inherited from a socket-activated parent are not ours:
	// nothing is taken, fd 3 is left alone, and the variables go.
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getppid()))
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "fail")
	ls, err := Listeners()
	if err != nil || ls == nil || len(ls) != 0 {
		t.Errorf("Listeners() = %v, %v; want an empty map, nil", ls, err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still set after Listeners()", k, v)
		}
	}
}

// activationReport is what the activated child tells the parent over the
// socket it was given.
type activationReport struct {
	Pid   int               `json:"pid"`
	Names map[string]string `json:"names"` // name -> address
	Env   []string          `json:"env"`   // LISTEN_* left in the environment
	// Inherited lists the sockets a command run by the child inherits.
	Inherited []string `json:"inherited"`
}

// TestListenersSocketActivation does what systemd does for
// fstaidd-fail.socket: it opens the listening sockets, starts a process
// with them as fds 3 and 4, LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID
// set to the new process's pid (through `sh -c 'LISTEN_PID=$$ exec ...'`,
// since the pid is only known once it runs), then connects. The child
// serves HTTP on the listener named "fail".
func TestListenersSocketActivation(t *testing.T) {
	fail, failFile := tcpListener(t)
	other, otherFile := tcpListener(t)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := activatedCommand(ctx, "activation", "fail:metrics", failFile, otherFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// From here on only the child holds the sockets: an answer can only
	// come from it.
	for _, c := range []io.Closer{fail, failFile, other, otherFile} {
		c.Close()
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 20 * time.Second}
	resp, err := client.Post("http://"+fail.Addr().String()+"/fail", "text/plain", nil)
	if err != nil {
		cmd.Wait()
		t.Fatalf("POST through the activated socket: %v\nchild output:\n%s", err, out.String())
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}

	var rep activationReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("child answered %d %q: %v", resp.StatusCode, body, err)
	}
	if rep.Pid != cmd.Process.Pid {
		t.Errorf("answered by pid %d, want the activated child %d", rep.Pid, cmd.Process.Pid)
	}
	want := map[string]string{"fail": fail.Addr().String(), "metrics": other.Addr().String()}
	if !maps.Equal(rep.Names, want) {
		t.Errorf("child got listeners %v, want %v", rep.Names, want)
	}
	if len(rep.Env) != 0 {
		t.Errorf("LISTEN_* left in the child's environment: %v", rep.Env)
	}
	if len(rep.Inherited) != 0 {
		t.Errorf("a command run by the activated process inherits %v: checks would hold the socket open", rep.Inherited)
	}
}

func TestListenersRejectsNonListener(t *testing.T) {
	// A unit that passes a datagram socket where a stream listener is
	// expected is a configuration error, not a socket to skip silently.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := pc.(*net.UDPConn).File()
	pc.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, lf := tcpListener(t)
	l.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := activatedCommand(ctx, "activation-bad", "fail:dgram", lf, f)
	out, err := cmd.CombinedOutput()
	f.Close()
	lf.Close()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.Contains(got, `systemd: socket "dgram" (fd 4) is not a stream listener`) {
		t.Errorf("Listeners() error = %q, want it to name the dgram socket", got)
	}
}

func tcpListener(t *testing.T) (*net.TCPListener, *os.File) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); f.Close() })
	return l.(*net.TCPListener), f
}

// activatedCommand starts this test binary in child mode with files as
// fds 3, 4, ... the way systemd passes sockets.
func activatedCommand(ctx context.Context, mode, names string, files ...*os.File) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0"`, os.Args[0])
	for _, kv := range childEnviron() {
		if !strings.HasPrefix(kv, "LISTEN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"="+mode, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+names)
	cmd.ExtraFiles = files
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// activationChild serves one request on the listener named "fail" and
// answers with an activationReport.
func activationChild() int {
	ls, err := Listeners()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rep := activationReport{Pid: os.Getpid(), Names: map[string]string{}}
	for name, group := range ls {
		for _, l := range group {
			rep.Names[name] = l.Addr().String()
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LISTEN_") {
			rep.Env = append(rep.Env, kv)
		}
	}
	// What a check command would inherit: its open sockets.
	fds, err := exec.Command("/bin/ls", "-l", "/proc/self/fd").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, line := range strings.Split(string(fds), "\n") {
		if strings.Contains(line, "socket:") {
			rep.Inherited = append(rep.Inherited, line)
		}
	}
	if len(ls["fail"]) != 1 {
		fmt.Fprintf(os.Stderr, "want one listener named fail, got %v\n", slices.Collect(maps.Keys(ls)))
		return 1
	}

	served := make(chan struct{})
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(rep)
			close(served)
		}),
	}
	go srv.Serve(ls["fail"][0])
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(os.Stderr, "no request within 20s")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// activationBadChild prints the error Listeners returns and fails if
// there is none.
func activationBadChild() int {
	ls, err := Listeners()
	if err == nil {
		fmt.Fprintf(os.Stderr, "Listeners() = %v, nil; want an error\n", ls)
		return 1
	}
	fmt.Println(err)
	return 0
}
