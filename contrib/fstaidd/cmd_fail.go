package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// failFlags are `fstaidd fail`'s flags.
type failFlags struct {
	clientFlags
	exit   int
	reason string
	yes    bool
}

// cmdFail asks the running daemon to fail over, after a confirmation when
// stdin is a terminal (never otherwise: a script must not hang on a
// question). Its exit status says what happened (client.go).
func cmdFail(ctx context.Context, path string, f *failFlags, stdin io.Reader, out, errOut io.Writer) int {
	if err := checkReason(f.reason); err != nil {
		fmt.Fprintf(errOut, "fstaidd fail: -reason %v\n", err)
		return exitUsage
	}
	cfg, err := loadToolConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	user, password, err := f.login(cfg, true, os.Getenv, errOut)
	if err != nil {
		fmt.Fprintf(errOut, "fstaidd fail: %v\n", err)
		return exitUsage
	}
	base := daemonURL(cfg, f.addr)
	if !f.yes && isTerminal(stdin) && !confirm(stdin, errOut, cfg.Global.Target, base) {
		fmt.Fprintln(errOut, "fstaidd fail: not confirmed; nothing was done")
		return exitNotDone
	}
	form := url.Values{"exit": {strconv.Itoa(f.exit)}}
	if f.reason != "" {
		form.Set("reason", f.reason)
	}
	resp, body, err := requestForm(ctx, http.MethodPost, base+"/fail", user, password, form)
	if err != nil {
		if neverSent(err) {
			fmt.Fprintf(errOut, "fstaidd fail: the daemon at %s is not reachable: %v\nNo failover began.\n", base, err)
		} else {
			fmt.Fprintf(errOut, "fstaidd fail: no answer from %s: %v\nA failover the daemon began finishes anyway: see fstaidd status.\n", base, err)
		}
		return exitUnreachable
	}
	fmt.Fprintf(out, "%s\n%s", resp.Status, body)
	var fr failResponse
	json.Unmarshal(body, &fr)
	code := failExit(resp.StatusCode, fr.Outcome)
	switch code {
	case exitAuthRefused:
		if password == "" {
			fmt.Fprintf(errOut, "fstaidd fail: %v\n", errNoPassword)
		}
	case exitAlreadyFailedOver:
		fmt.Fprintln(errOut, "fstaidd fail: a failover already happened (the record is above); re-arm with fstaidd unlock")
	}
	return code
}

// failExit maps the answer to POST /fail to fail's exit status.
func failExit(status int, outcome string) int {
	switch status {
	case http.StatusOK:
		return 0
	case http.StatusConflict:
		return exitAlreadyFailedOver
	case http.StatusInternalServerError:
		return exitFailHandlerFailed
	case http.StatusServiceUnavailable:
		if outcome == outcomeLockUnavailable {
			return exitLockUnavailable
		}
		return exitUnreachable // stopping, or exiting on a bad config
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitAuthRefused
	}
	return exitNotDone
}

// confirm asks on errOut and reads the answer from in: y or yes.
func confirm(in io.Reader, errOut io.Writer, target, base string) bool {
	fmt.Fprintf(errOut, "Fail over %s now, through the daemon at %s?\n"+
		"The handlers run at once, without any check; the monitor then stays failed over until re-armed.\n"+
		"Fail over? [y/N] ", target, base)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
