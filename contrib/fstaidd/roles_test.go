package main

import (
	"context"
	"strings"
	"testing"

	"github.com/fstaid/fstaid"
)

// Issue 15 (roles): a viewer reads /status and /metrics but may not fail
// over (403, the handler never runs); an admin may; a user without a role
// is an admin, so the original's configs keep working; `fstaidd fail`
// picks the first admin.
func TestViewerMayNotFailOver(t *testing.T) {
	e := newEnv(t, 0, `
[[user]]
userid = "prometheus"
password = "scrape"
role = "viewer"

[[user]]
userid = "ops"
password = "pw"
`)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	for _, path := range []string{"/status", "/metrics"} {
		if resp, _, err := request(context.Background(), "GET", r.url+path, "prometheus", "scrape"); err != nil || resp.StatusCode != 200 {
			t.Errorf("viewer GET %s: %v %v, want 200", path, resp.StatusCode, err)
		}
	}
	resp, body, err := request(context.Background(), "POST", r.url+"/fail", "prometheus", "scrape")
	if err != nil || resp.StatusCode != 403 || !strings.Contains(string(body), "only an admin may fail over") {
		t.Fatalf("viewer POST /fail: %v %s %v, want 403", resp.StatusCode, body, err)
	}
	if c := e.calls(); len(c) != 0 {
		t.Fatalf("the handler ran for a viewer: %q", c)
	}
	var out, errb strings.Builder
	if code := cmdFail(context.Background(), e.config, strings.TrimPrefix(r.url, "http://"), "", "", 1, &out, &errb); code != 0 {
		t.Fatalf("fstaidd fail (first admin, ops): exit %d %s %s", code, out.String(), errb.String())
	}
	if c := e.calls(); len(c) != 1 {
		t.Errorf("handler calls %q, want one (the admin's)", c)
	}
}

func TestUnknownRoleRefused(t *testing.T) {
	_, err := ParseConfig(validBase + "\n[[user]]\nuserid = \"a\"\npassword = \"b\"\nrole = \"root\"\n")
	if err == nil || !strings.Contains(err.Error(), "role") || !strings.Contains(err.Error(), `[[user]] #1 role: "root" is not a role`) {
		t.Errorf("role = \"root\": %v, want an error naming the key", err)
	}
}
