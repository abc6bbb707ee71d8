package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/fstaid/fstaid"
)

const userSecret = "UserSecret"

// Issue 15 (secrets): [[user]] password_file, plain or bcrypt, absolute
// or a systemd credential name under $CREDENTIALS_DIRECTORY, logs in over
// real HTTP; the tools log in with the same password without being told.
func TestUserPasswordFile(t *testing.T) {
	creds := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	os.WriteFile(filepath.Join(creds, "fstaidd-admin"), []byte(userSecret+"\n"), 0o400)
	hash, _ := bcrypt.GenerateFromPassword([]byte("look"), bcrypt.MinCost)
	viewerFile := filepath.Join(t.TempDir(), "viewer.hash")
	os.WriteFile(viewerFile, []byte(string(hash)+"\n"), 0o400)
	e := newEnv(t, 0, fmt.Sprintf(`
[[user]]
userid = "ops"
password_file = "fstaidd-admin"

[[user]]
userid = "prometheus"
password_file = %q
role = "viewer"
`, viewerFile))
	r := e.start()
	for _, tt := range []struct {
		method, path, user, password string
		want                         int
	}{
		{"GET", "/status", "ops", userSecret, 200},
		{"GET", "/status", "ops", userSecret + "\n", 401},
		{"GET", "/status", "ops", "fstaidd-admin", 401},
		{"GET", "/metrics", "prometheus", "look", 200},
		{"GET", "/metrics", "prometheus", string(hash), 401},
		{"POST", "/fail", "prometheus", "look", 403},
	} {
		resp, body, err := request(context.Background(), tt.method, r.url+tt.path, tt.user, tt.password)
		if err != nil || resp.StatusCode != tt.want {
			t.Errorf("%s %s as %s = %v %v %s, want %d", tt.method, tt.path, tt.user, resp.StatusCode, err, body, tt.want)
		}
	}
	// The tool reads the same credential (it runs here with
	// $CREDENTIALS_DIRECTORY, as under systemd-run -p LoadCredential=).
	addr := strings.TrimPrefix(r.url, "http://")
	if code, out := runCmd(t, "status", "-config", e.config, "-addr", addr); code != 0 {
		t.Errorf("fstaidd status with the credential: exit %d\n%s", code, out)
	}
}

func TestUserPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte(userSecret+"\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	costly, _ := bcrypt.GenerateFromPassword([]byte(userSecret), maxBcryptCost+1)
	costlyFile := filepath.Join(dir, "costly")
	os.WriteFile(costlyFile, costly, 0o600)
	user := func(lines string) string {
		return validBase + "[[user]]\nuserid = \"a\"\npassword = \"b\"\n[[user]]\nuserid = \"ops\"\n" + lines + "\n"
	}
	tests := []struct {
		name, credDir, config, want string
	}{
		{"both", "", user(fmt.Sprintf("password = \"x\"\npassword_file = %q", secret)), "[[user]] #2 password_file: set password or password_file, not both"},
		{"neither", "", user(""), "[[user]] #2 password: is required (or password_file)"},
		{"a credential without $CREDENTIALS_DIRECTORY", "", user(`password_file = "fstaidd-admin"`),
			`[[user]] #2 password_file: must be an absolute path, or a credential name when $CREDENTIALS_DIRECTORY is set (systemd's LoadCredential=); it is not set, got "fstaidd-admin"`},
		{"a credential outside $CREDENTIALS_DIRECTORY", dir, user(`password_file = "../etc/shadow"`),
			`[[user]] #2 password_file: must be an absolute path, or a credential name relative to $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) that stays inside it, got "../etc/shadow"`},
		{"a missing credential", dir, user(`password_file = "missing"`), "[[user]] #2 password_file: cannot read " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"a missing file", "", user(fmt.Sprintf("password_file = %q", filepath.Join(dir, "nope"))), "[[user]] #2 password_file: cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"an empty file", "", user(fmt.Sprintf("password_file = %q", empty)), "[[user]] #2 password_file: " + empty + " is empty"},
		{"a costly hash", "", user(fmt.Sprintf("password_file = %q", costlyFile)), fmt.Sprintf("[[user]] #2 password_file: bcrypt cost %d is above %d", maxBcryptCost+1, maxBcryptCost)},
		{"not a string", "", user("password_file = 3"), "[[user]] #2 password_file: must be a string, got an integer"},
	}
	for _, tt := range tests {
		t.Setenv("CREDENTIALS_DIRECTORY", tt.credDir)
		_, err := ParseConfig(tt.config)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v\nwant %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), userSecret) {
			t.Errorf("%s: the error shows the password: %v", tt.name, err)
		}
	}
}

// The tools run outside the service, without $CREDENTIALS_DIRECTORY: a
// credential name leaves that password unread instead of refusing the
// config, and fstaidd check says so; the daemon refuses such a config.
func TestToolsLoadConfigWithCredentialNames(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	e := newEnv(t, 0, "[[user]]\nuserid = \"ops\"\npassword_file = \"fstaidd-admin\"\n")
	if _, err := LoadConfig(e.config); err == nil || !strings.Contains(err.Error(), "[[user]] #1 password_file") {
		t.Errorf("LoadConfig (the daemon's) = %v, want the credential refused", err)
	}
	cfg, err := loadToolConfig(e.config)
	if err != nil {
		t.Fatalf("loadToolConfig: %v", err)
	}
	if len(cfg.unreadSecrets) != 1 || cfg.Users[0].Password != "" {
		t.Errorf("unread secrets %q, password %q: want the credential left unread", cfg.unreadSecrets, cfg.Users[0].Password)
	}
	_, out := runCmd(t, "check", "-config", e.config)
	if !strings.Contains(out, `note: [[user]] #1 password_file "fstaidd-admin" names a systemd credential`) {
		t.Errorf("fstaidd check does not mention the unread credential:\n%s", out)
	}
}

// Issue 15: the tools take their password from -password-file or
// $FSTAIDD_PASSWORD, so that it is not in argv where ps shows it; the
// order is -password-file, -password (warned about), $FSTAIDD_PASSWORD,
// then the config's plain password. Against a real daemon, whose
// /status answers 401 to a wrong password.
func TestToolPasswordSources(t *testing.T) {
	t.Setenv(passwordEnv, "")
	hash, _ := bcrypt.GenerateFromPassword([]byte("viewer-pw"), bcrypt.MinCost)
	e := newEnv(t, 0, fmt.Sprintf("[[user]]\nuserid = \"ops\"\npassword = \"pw\"\n[[user]]\nuserid = \"ro\"\npassword = %q\nrole = \"viewer\"\n", hash))
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	addr := strings.TrimPrefix(r.url, "http://")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("viewer-pw\n"), 0o600)
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	tests := []struct {
		name string
		env  string
		args []string
		want int
		says string
	}{
		{"the config's plain password", "", nil, 0, ""},
		{"$FSTAIDD_PASSWORD", "viewer-pw", []string{"-user", "ro"}, 0, ""},
		{"a wrong $FSTAIDD_PASSWORD", "wrong", []string{"-user", "ro"}, exitAuthRefused, "401"},
		{"-password-file", "", []string{"-user", "ro", "-password-file", good}, 0, ""},
		{"-password-file before $FSTAIDD_PASSWORD", "wrong", []string{"-user", "ro", "-password-file", good}, 0, ""},
		{"a wrong -password-file", "viewer-pw", []string{"-user", "ro", "-password-file", bad}, exitAuthRefused, "401"},
		{"-password, warned", "wrong", []string{"-user", "ro", "-password", "viewer-pw"}, 0, "-password is visible to every user of this host"},
		{"both flags", "", []string{"-user", "ro", "-password", "x", "-password-file", good}, exitUsage, "give -password or -password-file, not both"},
		{"a missing -password-file", "", []string{"-password-file", filepath.Join(dir, "none")}, exitUsage, "-password-file: cannot read"},
		{"a bcrypt hash in the config", "", []string{"-user", "ro"}, exitAuthRefused, "no password: set $FSTAIDD_PASSWORD or -password-file"},
	}
	for _, tt := range tests {
		t.Setenv(passwordEnv, tt.env)
		code, out := runCmd(t, append([]string{"status", "-config", e.config, "-addr", addr}, tt.args...)...)
		if code != tt.want || !strings.Contains(out, tt.says) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s", tt.name, code, tt.want, tt.says, out)
		}
	}
}
