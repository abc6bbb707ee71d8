package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// exe is an executable path that exists on every test machine.
const exe = "/bin/true"

func originalConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/original.toml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(data), `"HANDLER"`, `"`+exe+`"`, 1)
}

func TestOriginalConfigLoadsUnchanged(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	cfg, err := ParseConfig(originalConfig(t))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	g := cfg.Global
	if g.Port != 8080 || g.Interval != time.Second || g.MaxAttempts != 3 || g.AttemptInterval != time.Second ||
		g.Mode != "release" || !g.ContinueIfSelfCheckFailed {
		t.Errorf("global = %+v", g)
	}
	if g.LockDir != "/var/lib/fstaidd" || cfg.LockFile() != "/var/lib/fstaidd/fstaid.8080.lock" {
		t.Errorf("lock file %s, want the state directory, never /tmp", cfg.LockFile())
	}
	if cfg.Handler.Command != exe || cfg.Handler.Timeout != 300*time.Second {
		t.Errorf("handler %+v", cfg.Handler)
	}
	if cfg.Primary.Command != "curl -s -f web-01" || cfg.Primary.Timeout != 3*time.Second ||
		cfg.Secondary == nil || cfg.Self == nil || cfg.Self.Timeout != 3*time.Second {
		t.Errorf("checks %+v %+v %+v", cfg.Primary, cfg.Secondary, cfg.Self)
	}
	if len(cfg.Users) != 1 || cfg.Users[0].UserID != "ops" || cfg.Users[0].Password != "s3cret" {
		t.Errorf("users %+v", cfg.Users)
	}
	if got := cfg.ListenAddress(); got != ":8080" {
		t.Errorf("listen %s, want :8080 (users configured, as the original)", got)
	}
	if _, err := cfg.Options(context.Background(), discard); err != nil {
		t.Errorf("Options: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/fstaidd-x:/other")
	cfg, err := ParseConfig("[global]\nport = 9000\n[handler]\ncommand = \"" + exe + "\"\ntimeout = 1\n[primary]\ntcp = \"db:5432\"\ntimeout = 0.25\n")
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Global
	if g.Interval != time.Second || g.MaxAttempts != 3 || g.AttemptInterval != 0 || g.Mode != "debug" ||
		g.StartupCheck != "wait" || g.Target != "target" || g.LockDir != "/var/lib/fstaidd-x" {
		t.Errorf("defaults %+v", g)
	}
	if cfg.Primary.Timeout != 250*time.Millisecond {
		t.Errorf("fractional timeout %v", cfg.Primary.Timeout)
	}
	if got := cfg.ListenAddress(); got != "127.0.0.1:9000" {
		t.Errorf("listen %s: with no users, loopback only", got)
	}
}

const validBase = `
[global]
port = 8080
[handler]
command = "/bin/true"
timeout = 10
[primary]
command = "true"
timeout = 1
`

func TestConfigErrors(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), 13)
	tests := []struct {
		name, config string
		want         []string
	}{
		{"syntax", "[global\nport = 1", []string{"TOML syntax, line 2"}},
		{"missing sections", "", []string{"[global]: section is required", "[handler]: section is required", "[primary]: section is required"}},
		{"typo", validBase + "\n", nil},
		{"unknown key", strings.Replace(validBase, "port = 8080", "port = 8080\nmaxattempt = 3", 1), []string{`[global] maxattempt: unknown key (did you mean "maxattempts"?)`}},
		{"unknown section", validBase + "[primery]\ncommand = \"x\"\n", []string{`top level primery: unknown key (did you mean "primary"?)`}},
		{"port range", strings.Replace(validBase, "8080", "70000", 1), []string{"[global] port: must be between 1 and 65535, got 70000"}},
		{"port missing", strings.Replace(validBase, "port = 8080", "", 1), []string{"[global] port: is required"}},
		{"port type", strings.Replace(validBase, "8080", `"8080"`, 1), []string{"[global] port: must be a whole number, got a string"}},
		{"interval zero", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = 0", 1), []string{"[global] interval: must be more than 0 seconds"}},
		{"interval negative", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = -1", 1), []string{"[global] interval: must be between 0 and"}},
		{"interval inf", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = inf", 1), []string{"[global] interval: must be between 0 and"}},
		{"interval nan", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = nan", 1), []string{"[global] interval: must be between 0 and"}},
		{"interval string", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = \"1 s\"", 1), []string{`[global] interval: must be a number of seconds or a duration such as "1m30s", got "1 s"`}},
		{"interval duration string", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = \"1m30s\"", 1), nil},
		{"interval too long", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = \"25h\"", 1), []string{"[global] interval: must be between 0 and 86400 seconds, got 90000"}},
		{"interval type", strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = true", 1), []string{`[global] interval: must be a number of seconds or a duration such as "1m30s", got a boolean`}},
		{"maxattempts", strings.Replace(validBase, "port = 8080", "port = 8080\nmaxattempts = 0", 1), []string{"[global] maxattempts: must be between 1 and 1000, got 0"}},
		{"mode", strings.Replace(validBase, "port = 8080", "port = 8080\nmode = \"verbose\"", 1), []string{`[global] mode: must be "debug" or "release", got "verbose"`}},
		{"startup_check", strings.Replace(validBase, "port = 8080", "port = 8080\nstartup_check = \"maybe\"", 1), []string{`[global] startup_check: must be "wait" or "exit"`}},
		{"bool type", strings.Replace(validBase, "port = 8080", "port = 8080\ncontinue_if_self_check_failed = 1", 1), []string{"[global] continue_if_self_check_failed: must be true or false, got an integer"}},
		{"handler missing executable", strings.Replace(validBase, `"/bin/true"`, `"/nonexistent/handler.rb --x"`, 1), []string{"[handler] command: /nonexistent/handler.rb is not an executable file"}},
		{"handler timeout", strings.Replace(validBase, "timeout = 10", "timeout = 0", 1), []string{"[handler] timeout: must be more than 0 seconds"}},
		{"primary no command", strings.Replace(validBase, "command = \"true\"", "", 1), []string{"[primary] command: is required (or a native check: http, tcp or imds)"}},
		{"primary two kinds", strings.Replace(validBase, "command = \"true\"", "command = \"true\"\ntcp = \"a:1\"", 1), []string{"[primary]: set only one of command, http, tcp and imds"}},
		{"primary pipeline", strings.Replace(validBase, "command = \"true\"", `command = "curl x | grep y"`, 1), []string{"[primary] command: command \"curl x | grep y\" contains a shell operator"}},
		{"primary timeout missing", strings.Replace(validBase, "timeout = 1\n", "", 1), []string{"[primary] timeout: is required"}},
		{"http url", strings.Replace(validBase, "command = \"true\"", `http = "ftp://x"`, 1), []string{`[primary] http: must be an http:// or https:// URL, got "ftp://x"`}},
		{"tcp addr", strings.Replace(validBase, "command = \"true\"", `tcp = "db"`, 1), []string{"[primary] tcp: must be host:port"}},
		{"proxy without http", strings.Replace(validBase, "command = \"true\"", "command = \"true\"\nproxy = \"http://b:1\"", 1), []string{"[primary] proxy: applies only to an http check"}},
		{"secondary alone is validated", validBase + "[secondary]\ntimeout = 0\n", []string{"[secondary] command: is required", "[secondary] timeout: must be more than 0 seconds"}},
		{"user fields", validBase + "[[user]]\nuserid = \"\"\n[[user]]\nuserid = \"a\"\npassword = \"x\"\n[[user]]\nuserid = \"a\"\npassword = \"y\"\n", []string{"[[user]] #1 userid: is required", "[[user]] #1 password: is required", `[[user]] #3 userid: duplicate user "a"`}},
		{"userid with a colon", validBase + "[[user]]\nuserid = \"ok\"\npassword = \"x\"\n[[user]]\nuserid = \"ops:admin\"\npassword = \"x\"\n", []string{`[[user]] #2 userid: "ops:admin" contains ':'`}},
		{"bcrypt cost", validBase + "[[user]]\nuserid = \"a\"\npassword = \"" + string(hash) + "\"\n", []string{"[[user]] #1 password: bcrypt cost 13 is above 12"}},
		{"bad bcrypt", validBase + "[[user]]\nuserid = \"a\"\npassword = \"$2a$10$short\"\n", []string{"[[user]] #1 password: looks like a bcrypt hash but is not one"}},
		{"user not array", validBase + "[user]\nuserid = \"a\"\n", []string{"top level user: must be an array of tables ([[user]]), got a table"}},
		{"listen open without users", strings.Replace(validBase, "port = 8080", "port = 8080\nlisten = \"0.0.0.0:8080\"", 1), []string{"[global] listen: 0.0.0.0:8080 is not a loopback address and no [[user]] is configured"}},
		{"global not table", "global = 1\n" + strings.Replace(validBase, "[global]\nport = 8080\n", "", 1), []string{"top level global: must be a table"}},
	}
	for _, tt := range tests {
		_, err := ParseConfig(tt.config)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: unexpected error %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error, want %q", tt.name, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nlacks %q", tt.name, err, w)
			}
		}
	}
}

func TestHandlerNotExecutable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handler.rb")
	os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644)
	_, err := ParseConfig(strings.Replace(validBase, `"/bin/true"`, `"`+path+`"`, 1))
	if err == nil || !strings.Contains(err.Error(), "[handler] command: "+path+" is not an executable file") {
		t.Errorf("ParseConfig = %v", err)
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := ParseConfig(`
[global]
port = 0
interval = -2
maxattempt = 3
mode = "loud"
[handler]
command = "/nonexistent"
[primary]
http = "nope"
timeout = 0
[secondary]
tcp = "x"
timeout = 1
`)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"[global] port", "[global] interval", "[global] maxattempt: unknown key", "[global] mode",
		"[handler] command: /nonexistent is not an executable file", "[handler] timeout: is required",
		"[primary] http", "[primary] timeout", "[secondary] tcp"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("lacks %q in\n%v", w, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "9 problems:") {
		t.Errorf("want 9 problems listed, got\n%v", err)
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fstaidd.toml")
	os.WriteFile(path, []byte("[global]\n"), 0o644)
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || exitCode(err) != exitConfig {
		t.Errorf("LoadConfig = %v (exit %d)", err, exitCode(err))
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml")); err == nil || exitCode(err) != exitConfig {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzParseConfig: no input panics, and a config that parses has sane
// values. The seed corpus runs in every `go test`.
func FuzzParseConfig(f *testing.F) {
	f.Add(originalConfigF(f))
	f.Add(validBase)
	f.Add("[global]\nport = 8080\ninterval = 1e308\nmaxattempts = 9223372036854775807\n")
	f.Add("[global]\ninterval = -0.0\nport = -1\n[[user]]\npassword = \"$2b$99$x\"\n")
	f.Add("[primary]\nhttp = \"http://[::1\"\nproxy = \"::\"\n[aws]\nx = 1\n")
	f.Add("user = [1, 2]\n[handler]\ncommand = \"'\"\n")
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		g := cfg.Global
		if g.Port < 1 || g.Port > 65535 || g.Interval <= 0 || g.MaxAttempts < 1 || g.AttemptInterval < 0 ||
			cfg.Handler == nil || cfg.Handler.Timeout <= 0 || cfg.Primary == nil || cfg.Primary.Timeout <= 0 {
			t.Fatalf("accepted an invalid config: %+v", cfg)
		}
		if _, err := cfg.Options(context.Background(), discard); err != nil {
			t.Fatalf("valid config, but Options: %v", err)
		}
	})
}

func originalConfigF(f *testing.F) string {
	data, err := os.ReadFile("testdata/original.toml")
	if err != nil {
		f.Fatal(err)
	}
	return strings.Replace(string(data), `"HANDLER"`, `"`+exe+`"`, 1)
}

// A user name with a colon could never log in (basic auth splits at the
// first colon): the daemon refuses the config with 78, naming the user.
func TestUserIDWithColonRefused(t *testing.T) {
	e := newEnv(t, 0, "[[user]]\nuserid = \"ops\"\npassword = \"pw\"\n[[user]]\nuserid = \"ops:admin\"\npassword = \"pw\"\n")
	if code := e.start().wait(t); code != exitConfig {
		t.Errorf("fstaidd with a colon in a userid: exit %d, want %d", code, exitConfig)
	}
	code, out := runCmd(t, "check", "-config", e.config)
	if code != exitConfig || !strings.Contains(out, `[[user]] #2 userid: "ops:admin" contains ':'`) {
		t.Errorf("fstaidd check with a colon in a userid = %d:\n%s", code, out)
	}
}

func TestUnknownRoleRefused(t *testing.T) {
	_, err := ParseConfig(validBase + "\n[[user]]\nuserid = \"a\"\npassword = \"b\"\nrole = \"root\"\n")
	if err == nil || !strings.Contains(err.Error(), "role") || !strings.Contains(err.Error(), `[[user]] #1 role: "root" is not a role`) {
		t.Errorf("role = \"root\": %v, want an error naming the key", err)
	}
}

// Issue 15: a misspelled key gets the closest known one, in every
// section of fstaidd.toml — the daemon's, [aws] and its tables, [etcd] —
// and a misspelled section at the top level.
func TestSuggestionsInEverySection(t *testing.T) {
	const (
		handler = "[handler]\ncommand = \"/bin/true\"\ntimeout = 10\n"
		primary = "[primary]\ncommand = \"true\"\ntimeout = 1\n"
		global  = "[global]\nport = 8080\n"
	)
	tests := []struct{ config, want string }{
		{global + "intervall = 1\n" + handler + primary, `[global] intervall: unknown key (did you mean "interval"?)`},
		{global + "[handler]\ncomand = \"/bin/true\"\ntimeout = 10\n" + primary, `[handler] comand: unknown key (did you mean "command"?)`},
		{global + handler + "[primary]\ncomand = \"true\"\ntimeout = 1\n", `[primary] comand: unknown key (did you mean "command"?)`},
		{global + handler + primary + "[secondary]\ncomand = \"true\"\ntimeout = 1\n", `[secondary] comand: unknown key (did you mean "command"?)`},
		{global + handler + primary + "[self]\ncomand = \"true\"\ntimeout = 1\n", `[self] comand: unknown key (did you mean "command"?)`},
		{global + handler + primary + "[secondry]\ncommand = \"true\"\ntimeout = 1\n", `top level secondry: unknown key (did you mean "secondary"?)`},
		{global + "[hanlder]\ncommand = \"/bin/true\"\ntimeout = 10\n" + primary, `top level hanlder: unknown key (did you mean "handler"?)`},
		{global + handler + primary + "[[usr]]\nuserid = \"a\"\npassword = \"b\"\n", `top level usr: unknown key (did you mean "user"?)`},
		{global + handler + primary + "[[user]]\nuserid = \"a\"\npasword = \"b\"\n", `[[user]] #1 pasword: unknown key (did you mean "password"?)`},
		{global + handler + primary + "[[user]]\nuserid = \"a\"\npassword_fil = \"/b\"\n", `[[user]] #1 password_fil: unknown key (did you mean "password_file"?)`},
		{global + handler + primary + "[aws]\nregoin = \"eu-west-1\"\n", `[aws] regoin: unknown key (did you mean "region"?)`},
		{global + handler + primary + "[asw]\nregion = \"eu-west-1\"\n", `top level asw: unknown key (did you mean "aws"?)`},
		{global + handler + primary + "[aws.imds]\nendpiont = \"http://169.254.169.254\"\n", `[aws.imds] endpiont: unknown key (did you mean "endpoint"?)`},
		{global + handler + primary + "[[aws.elastic_ip]]\nallocaton_id = \"eipalloc-1\"\n", `[[aws.elastic_ip]] #1 allocaton_id: unknown key (did you mean "allocation_id"?)`},
		{global + handler + primary + "[[aws.elastc_ip]]\nallocation_id = \"eipalloc-1\"\n", `[aws] elastc_ip: unknown key (did you mean "elastic_ip"?)`},
		{global + handler + primary + "[etcd]\nendpionts = [\"http://127.0.0.1:2379\"]\n", `[etcd] endpionts: unknown key (did you mean "endpoints"?)`},
		{global + handler + primary + "[etdc]\nendpoints = [\"http://127.0.0.1:2379\"]\n", `top level etdc: unknown key (did you mean "etcd"?)`},
	}
	for _, tt := range tests {
		_, err := ParseConfig(tt.config)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config\n%s\ngave %v\nwant %q", tt.config, err, tt.want)
		}
	}
}
