package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Issue 15 (many targets on one host): -i INSTANCE is -config
// /etc/fstaidd/INSTANCE.toml for every subcommand, with the lock
// directory of fstaidd@INSTANCE.service.
func TestInstanceFlagNamesTheInstanceConfig(t *testing.T) {
	// A name no machine has: the commands fail reading its config, and
	// the error names the path -i made.
	name := fmt.Sprintf("fstaidd-test-%d", os.Getpid())
	want := "/etc/fstaidd/" + name + ".toml"
	if _, err := os.Stat(want); err == nil {
		t.Skipf("%s exists on this machine", want)
	}
	for _, args := range [][]string{
		{"check", "-i", name},
		{"status", "-i", name},
		{"fail", "-i", name, "-exit", "3"},
		{"unlock", "-i", name},
		{"-i", name}, // the daemon, as ExecStart could run it
	} {
		t.Setenv("STATE_DIRECTORY", "")
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if code != exitConfig || !strings.Contains(errb.String()+out.String(), want) {
			t.Errorf("fstaidd %s: exit %d, output %q; want %d naming %s", strings.Join(args, " "), code, errb.String()+out.String(), exitConfig, want)
		}
		if sd := os.Getenv("STATE_DIRECTORY"); sd != "/var/lib/fstaidd/"+name {
			t.Errorf("fstaidd %s: STATE_DIRECTORY = %q, want /var/lib/fstaidd/%s (the unit's StateDirectory=fstaidd/%%i)", strings.Join(args, " "), sd, name)
		}
	}
}

func TestResolveConfig(t *testing.T) {
	instance := map[string]bool{"i": true}
	for _, tc := range []struct {
		given            map[string]bool
		instance, config string
		want             string
	}{
		{nil, "", defaultConfig, defaultConfig},
		{map[string]bool{"config": true}, "", "/srv/x.toml", "/srv/x.toml"},
		{instance, "db1", defaultConfig, "/etc/fstaidd/db1.toml"},
		{instance, `db\x2d1`, defaultConfig, `/etc/fstaidd/db\x2d1.toml`}, // %i keeps systemd's escapes
		{instance, "pg@eu-1:5432", defaultConfig, "/etc/fstaidd/pg@eu-1:5432.toml"},
	} {
		t.Setenv("STATE_DIRECTORY", "")
		got, err := resolveConfig(tc.given, tc.instance, tc.config)
		if err != nil || got != tc.want {
			t.Errorf("resolveConfig(%v, %q, %q) = %q, %v; want %q", tc.given, tc.instance, tc.config, got, err, tc.want)
		}
	}
}

// The instance's lock directory is where its unit's daemon writes the
// record: a shell's `fstaidd unlock -i db1` must find it there.
func TestInstanceLockDir(t *testing.T) {
	const cfg = "[global]\nport = 8081\n[handler]\ncommand = \"true\"\ntimeout = 5\n[primary]\ncommand = \"true\"\ntimeout = 5\n"
	t.Setenv("STATE_DIRECTORY", "")
	if _, err := resolveConfig(map[string]bool{"i": true}, "db1", defaultConfig); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LockFile(); got != "/var/lib/fstaidd/db1/fstaid.8081.lock" {
		t.Errorf("lock file with -i db1 = %s, want /var/lib/fstaidd/db1/fstaid.8081.lock", got)
	}
	// Under the unit, systemd's STATE_DIRECTORY stands (a drop-in may
	// have moved it).
	t.Setenv("STATE_DIRECTORY", "/srv/fstaidd/db1")
	if _, err := resolveConfig(map[string]bool{"i": true}, "db1", defaultConfig); err != nil {
		t.Fatal(err)
	}
	if c, err = ParseConfig(cfg); err != nil || c.LockFile() != "/srv/fstaidd/db1/fstaid.8081.lock" {
		t.Errorf("lock file with STATE_DIRECTORY set = %v %v, want /srv/fstaidd/db1/fstaid.8081.lock", c, err)
	}
	// lockdir in the config wins over both.
	if c, err = ParseConfig(strings.Replace(cfg, "port = 8081\n", "port = 8081\nlockdir = \"/x\"\n", 1)); err != nil || c.LockFile() != "/x/fstaid.8081.lock" {
		t.Errorf("lockdir = \"/x\": %v %v", c, err)
	}
}

func TestInstanceErrors(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "-i", "db1", "-config", "/etc/fstaidd/db1.toml"}, 2, "-i db1 and -config /etc/fstaidd/db1.toml: give one of them"},
		{[]string{"fail", "-config", "/x.toml", "-i", "db1"}, 2, "give one of them (-i db1 means -config /etc/fstaidd/db1.toml)"},
		{[]string{"-i", "db1", "-config", "/x.toml"}, exitConfig, "give one of them"},
		{[]string{"unlock", "-i", "../etc/passwd"}, 2, `systemd does not allow '/' in an instance name`},
		{[]string{"check", "-i", "db 1"}, 2, `does not allow ' '`},
		{[]string{"status", "-i", ".."}, 2, "not an instance name"},
		{[]string{"status", "-i", ""}, 2, "empty"},
		{[]string{"status", "-i", strings.Repeat("d", 236)}, 2, "at most 235"},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("fstaidd %q: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
		if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
			t.Errorf("fstaidd %q: STATE_DIRECTORY = %q after an error, want it untouched", tc.args, sd)
		}
	}
	if err := checkInstance(strings.Repeat("d", 235)); err != nil {
		t.Errorf("a 235-character instance: %v; fstaidd-fail@….socket is then 255 characters, which systemd allows", err)
	}
	for _, ok := range []string{"db1", "db-1", "a.b", "x@y", "a:b_c", `db\x2d1`} {
		if err := checkInstance(ok); err != nil {
			t.Errorf("checkInstance(%q) = %v, want nil (systemd accepts it)", ok, err)
		}
	}
	for _, bad := range []string{"ü", "a/b", "a\nb", "a*", "."} {
		if err := checkInstance(bad); !errors.Is(err, errInstance) {
			t.Errorf("checkInstance(%q) = %v, want errInstance", bad, err)
		}
	}
}
