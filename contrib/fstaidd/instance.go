package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// An instance is one monitor of several on a host, run by the template
// unit fstaidd@INSTANCE.service (contrib/systemd/fstaidd@.service): its
// config is /etc/fstaidd/INSTANCE.toml and its state directory, the
// default lock directory, /var/lib/fstaidd/INSTANCE (StateDirectory=
// fstaidd/%i). `-i INSTANCE` names both for every subcommand.
const (
	instanceConfigDir = "/etc/fstaidd"
	instanceStateDir  = "/var/lib/fstaidd"
)

// errInstance is wrapped by every -i problem.
var errInstance = errors.New("fstaidd: -i")

// instanceChars are the characters systemd allows in an instance name
// (unit_instance_is_valid: VALID_CHARS and '@'). None is '/', so the
// name can never leave instanceConfigDir or instanceStateDir.
const instanceChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@"

// maxInstance keeps the longest unit name the instance makes,
// fstaidd-fail@INSTANCE.socket, within systemd's 255 characters.
const maxInstance = 255 - len("fstaidd-fail@.socket")

// checkInstance reports whether systemd would accept name as the
// instance of fstaidd@.service and fstaidd-fail@.socket.
func checkInstance(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the instance name is empty", errInstance)
	case len(name) > maxInstance:
		return fmt.Errorf("%w: the instance name is %d characters long; systemd allows at most %d here", errInstance, len(name), maxInstance)
	case name == "." || name == "..":
		// systemd allows them, but StateDirectory=fstaidd/%i does not.
		return fmt.Errorf("%w %q: not an instance name (its state directory would be %s)", errInstance, name, filepath.Join(instanceStateDir, name))
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !strings.ContainsRune(instanceChars, r) }); i >= 0 {
		return fmt.Errorf("%w %q: systemd does not allow %q in an instance name (letters, digits and : - _ . \\ @ only; systemd-escape makes one)",
			errInstance, name, []rune(name[i:])[0])
	}
	return nil
}

// instanceConfig is the config file of instance name.
func instanceConfig(name string) string {
	return filepath.Join(instanceConfigDir, name+".toml")
}

// resolveConfig returns the config path that -i instance and -config
// config mean together (given holds the flags given): the instance's
// config, or config. Both at once is an error: they could name
// different files. With an instance and no STATE_DIRECTORY (a
// command run from a shell, not by the instance's unit), it sets
// STATE_DIRECTORY to the instance's state directory, so that the lock
// directory defaults to where the unit's daemon keeps its record.
func resolveConfig(given map[string]bool, instance, config string) (string, error) {
	if !given["i"] {
		return config, nil
	}
	if err := checkInstance(instance); err != nil {
		return "", err
	}
	if given["config"] {
		return "", fmt.Errorf("%w %s and -config %s: give one of them (-i %s means -config %s)",
			errInstance, instance, config, instance, instanceConfig(instance))
	}
	if os.Getenv("STATE_DIRECTORY") == "" {
		if err := os.Setenv("STATE_DIRECTORY", filepath.Join(instanceStateDir, instance)); err != nil {
			return "", fmt.Errorf("%w: %w", errInstance, err)
		}
	}
	return instanceConfig(instance), nil
}
