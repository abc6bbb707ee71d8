package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// cmdFail asks the running daemon to fail over: 0 when it did and every
// handler succeeded, 1 otherwise.
func cmdFail(ctx context.Context, path, addr, user, password string, exit int, out, errOut io.Writer) int {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	user, password = credentials(cfg, user, password, true)
	u := daemonURL(cfg, addr) + "/fail?exit=" + url.QueryEscape(strconv.Itoa(exit))
	resp, body, err := request(ctx, http.MethodPost, u, user, password)
	if err != nil {
		fmt.Fprintf(errOut, "fstaidd fail: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "%s\n%s", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
