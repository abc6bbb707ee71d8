package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The subcommands that talk to a running daemon (fail, status) share its
// address, the credentials, one HTTP client and their exit statuses.

// Exit statuses of fail and status. They stay clear of the daemon's own
// (10-14, 70), so that no script or unit mistakes one for the other; 2
// (usage) and 78 (configuration) mean what they mean everywhere.
const (
	exitNotDone           = 1  // not done: answered no at the prompt, or an answer none of the below
	exitUsage             = 2  // bad flags or a -password-file that cannot be read
	exitAlreadyFailedOver = 20 // 409: a failover already happened (the record is shown)
	exitFailHandlerFailed = 21 // 500: failed over, but a handler failed
	exitLockUnavailable   = 22 // 503: the lock could not be taken; no handler ran
	exitUnreachable       = 23 // the daemon did not answer, or is stopping or not running: no failover began
	exitAuthRefused       = 24 // 401 or 403: wrong credentials, or a viewer asked to fail over
)

// passwordEnv is the environment variable the tools read a password from.
const passwordEnv = "FSTAIDD_PASSWORD"

// clientFlags are the flags of the commands that talk to the daemon.
type clientFlags struct {
	addr, user, password, passwordFile string
}

func (c *clientFlags) register(fs *flag.FlagSet, defaultUser string) {
	fs.StringVar(&c.addr, "addr", "", "daemon address (default: from the config)")
	fs.StringVar(&c.user, "user", "", "user for basic auth (default: "+defaultUser+")")
	fs.StringVar(&c.passwordFile, "password-file", "", "file holding the password (default: $"+passwordEnv+", then the config's password for the user, if plain)")
	fs.StringVar(&c.password, "password", "", "password; ps shows it to every user: prefer $"+passwordEnv+" or -password-file")
}

// errNoPassword is login's hint when the server refuses a request sent
// without a password.
var errNoPassword = errors.New("no password: set $" + passwordEnv + " or -password-file")

// login returns the user and password to send. The user: -user, else the
// config's first [[user]] (the first admin when admin is set: only admins
// may fail over). The password, the first of: -password-file,
// -password (with a warning: ps shows it), $FSTAIDD_PASSWORD, and the
// config's password for that user when it is plain (given in the config
// or read from its password_file). err is a usage error.
func (c *clientFlags) login(cfg *Config, admin bool, getenv func(string) string, warn io.Writer) (user, password string, err error) {
	if c.password != "" && c.passwordFile != "" {
		return "", "", errors.New("give -password or -password-file, not both")
	}
	user = c.user
	if user == "" {
		for _, u := range cfg.Users {
			if !admin || u.Role == RoleAdmin {
				user = u.UserID
				break
			}
		}
	}
	switch {
	case c.passwordFile != "":
		password, err = readPasswordFile(c.passwordFile)
		if err != nil {
			return "", "", fmt.Errorf("-password-file: %w", err)
		}
	case c.password != "":
		fmt.Fprintf(warn, "fstaidd: warning: -password is visible to every user of this host (ps, /proc); use $%s or -password-file\n", passwordEnv)
		password = c.password
	case getenv(passwordEnv) != "":
		password = getenv(passwordEnv)
	default:
		for _, u := range cfg.Users {
			if u.UserID == user && !isBcrypt(u.Password) {
				password = u.Password
			}
		}
	}
	return user, password, nil
}

// daemonURL is the running daemon's base URL from the flag or the config.
func daemonURL(cfg *Config, addr string) string {
	if addr == "" {
		addr = cfg.ListenAddress()
		host, port, _ := net.SplitHostPort(addr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

var toolClient = &http.Client{Timeout: 15 * time.Minute}

// request sends a request with basic auth (when user is set) and reads
// the answer (at most 1 MiB).
func request(ctx context.Context, method, rawURL, user, password string) (*http.Response, []byte, error) {
	return requestForm(ctx, method, rawURL, user, password, nil)
}

// requestForm is request with form as its body, when not nil.
func requestForm(ctx context.Context, method, rawURL, user, password string, form url.Values) (*http.Response, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := toolClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

// neverSent reports whether a request error happened before the request
// reached the daemon (nothing listens, no route): then nothing began.
func neverSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
