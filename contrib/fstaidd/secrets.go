package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fstaid/fstaid/contrib/internal/config"
)

// Secrets kept out of fstaidd.toml: a password_file key ([[user]], an
// http check) names a file holding the password alone, read once when
// the config loads. An absolute path is read as it is; a relative one
// names a systemd credential (LoadCredential=, LoadCredentialEncrypted=,
// SetCredential=): a file in $CREDENTIALS_DIRECTORY, which systemd sets
// for the service only.

// maxPasswordFile bounds what password_file may hold: a password, not a
// device that never ends.
const maxPasswordFile = 4 << 10

// secretFiles reads a config's password files.
type secretFiles struct {
	credDir string // $CREDENTIALS_DIRECTORY, "" when unset
	// tool is set for the operator's commands, which run outside the
	// service and so without $CREDENTIALS_DIRECTORY: a credential name
	// is then left unread (see unread) instead of a problem. The daemon
	// reads every file or refuses the config.
	tool   bool
	unread []string
}

func newSecretFiles(tool bool) *secretFiles {
	return &secretFiles{credDir: os.Getenv("CREDENTIALS_DIRECTORY"), tool: tool}
}

// read returns the password in the file path names, key's value in t,
// or records why it cannot (then ok is false). A final newline (echo
// secret > file) is not part of the password.
func (s *secretFiles) read(t *config.Table, key, path string) (pw string, ok bool) {
	if path == "" {
		t.Errorf(key, "must name a file")
		return "", false
	}
	if !filepath.IsAbs(path) {
		if !filepath.IsLocal(path) {
			t.Errorf(key, "must be an absolute path, or a credential name relative to $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) that stays inside it, got %q", path)
			return "", false
		}
		if s.credDir == "" {
			if s.tool {
				s.unread = append(s.unread, fmt.Sprintf("%s %s %q", t.Name(), key, path))
				return "", false
			}
			t.Errorf(key, "must be an absolute path, or a credential name when $CREDENTIALS_DIRECTORY is set (systemd's LoadCredential=); it is not set, got %q", path)
			return "", false
		}
		path = filepath.Join(s.credDir, path)
	}
	pw, err := readPasswordFile(path)
	if err != nil {
		t.Errorf(key, "%v", err)
		return "", false
	}
	return pw, true
}

// readPasswordFile reads a file holding a password alone: at most
// maxPasswordFile bytes, not empty, its final newline dropped. The
// error names the file, never its content.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	case len(data) > maxPasswordFile:
		return "", fmt.Errorf("%s holds more than %d bytes: want the password alone", path, maxPasswordFile)
	}
	pw := strings.TrimRight(string(data), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}
