package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fstaid/fstaid"
	awsx "github.com/fstaid/fstaid/contrib/aws"
	"github.com/fstaid/fstaid/contrib/etcd"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

// errConfig marks configuration errors (exit status 78).
var errConfig = errors.New("fstaidd: configuration error")

// Config is fstaidd.toml: the original fstaid.toml, unchanged in meaning,
// plus extensions. Every duration is in seconds, fractions allowed, or a
// Go duration string (config.ParseSeconds).
type Config struct {
	Path   string
	Global Global
	// Handler is the original's [handler] command.
	Handler *CommandSection
	// Primary is required; Secondary and Self are optional.
	Primary, Secondary, Self *CheckSection
	Users                    []User

	// AWS holds the [aws] section: floating-IP handlers and the IMDS check.
	AWS *awsx.Config
	// Etcd holds the [etcd] section: a failover record shared by several
	// monitors, and k-of-n verdicts.
	Etcd *etcd.Config

	// Notify holds [notify]: a command run on every state transition.
	Notify *NotifySection

	// FileLock is the lock at LockFile, built once: the failover record
	// without [etcd], the fallback with on_unavailable = "local-lock";
	// the tools read and remove it.
	FileLock *fstaid.FileLock

	// unreadSecrets names the password files a tool's load left unread:
	// systemd credentials, outside the service (secretFiles).
	unreadSecrets []string
}

// Global is the [global] section.
type Global struct {
	Port                      int
	Interval                  time.Duration
	MaxAttempts               int
	AttemptInterval           time.Duration
	LockDir                   string
	Log                       string
	Mode                      string // "debug" (default) or "release"
	ContinueIfSelfCheckFailed bool
	// StartupCheck is "wait" (default: serve unarmed until healthy) or
	// "exit" (the original's behaviour: exit 13).
	StartupCheck string
	Target       string
	// Listen overrides the address bound for the HTTP endpoint when no
	// socket is passed by systemd. Default ":port" with users,
	// "127.0.0.1:port" without.
	Listen string
	// Journal forces logging to journald.
	Journal bool
	// ReadinessInterval is how often the failover path is re-verified
	// while armed (fstaid.WithReadiness); 0: never. Default 5 minutes.
	ReadinessInterval time.Duration
}

// CommandSection is a command with a timeout: [handler].
type CommandSection struct {
	Command string
	Timeout time.Duration
	// script is the handler built from Command, once: the one validated
	// is the one that runs.
	script *fstaid.ScriptHandler
}

// CheckSection is [primary], [secondary] or [self]: exactly one of a
// command (the original), a native HTTP URL or a TCP address.
type CheckSection struct {
	Name string
	// with is the Monitor option the section sets: fstaid.WithPrimary,
	// WithSecondary or WithSelf.
	with    func(fstaid.Check, time.Duration) fstaid.Option
	Command string
	HTTP    string
	TCP     string
	Proxy   string
	// Username and PasswordFile give an http check's basic-auth
	// credentials apart from its URL; the password is read from the file
	// when the config loads, and only the check ever sees it.
	Username     string
	PasswordFile string
	password     string
	// httpOptions are an http check's headers and TLS (httpcheck.go).
	httpOptions
	// IMDS is the native IMDSv2 check ([aws.imds] configures it).
	IMDS    bool
	Timeout time.Duration
}

// User is one [[user]] for basic auth; Password is plain text or a bcrypt
// hash ($2a$, $2b$, $2y$), given in the config or read from
// PasswordFile when it loads.
type User struct {
	UserID       string
	Password     string
	PasswordFile string
	// Role is RoleAdmin (the default, so the original's configs keep
	// working: may POST /fail) or RoleViewer (/status and /metrics only).
	Role string
}

// The roles of [[user]] role.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Limits on what the config accepts (durations: config.ParseSeconds).
const (
	maxBcryptCost = 12 // bounds the CPU one login attempt costs
	defaultConfig = "/etc/fstaidd/fstaidd.toml"
)

// LockFile is the original's <lockdir>/fstaid.<port>.lock.
func (c *Config) LockFile() string {
	return filepath.Join(c.Global.LockDir, fmt.Sprintf("fstaid.%d.lock", c.Global.Port))
}

// UsesFileLock reports whether LockFile may hold the failover record:
// always without [etcd], as the fallback with on_unavailable = "local-lock".
func (c *Config) UsesFileLock() bool {
	return c.Etcd == nil || c.Etcd.OnUnavailable == etcd.OnUnavailableLocalLock
}

// ListenAddress is where the endpoint binds when no socket is passed.
func (c *Config) ListenAddress() string {
	if c.Global.Listen != "" {
		return c.Global.Listen
	}
	if len(c.Users) == 0 {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Global.Port))
	}
	return ":" + strconv.Itoa(c.Global.Port)
}

// LoadConfig reads and validates path, as the daemon needs it: every
// password file read. The error lists every problem.
func LoadConfig(path string) (*Config, error) { return loadConfig(path, false) }

// loadToolConfig is LoadConfig for the operator's commands, which run
// outside the service: a password file named relative to
// $CREDENTIALS_DIRECTORY is left unread while that is unset
// (Config.unreadSecrets), instead of failing the load.
func loadToolConfig(path string) (*Config, error) { return loadConfig(path, true) }

func loadConfig(path string, tool bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	cfg, err := parseConfig(string(data), newSecretFiles(tool))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig parses and validates a config. Syntax errors stop at the
// first; every other problem is collected, each naming its section and
// key (config's spelling: "[global] port", "[[user]] #2 userid"): each
// section reads its own keys from the one decoded file and validates
// them, [aws] and [etcd] in the packages that own them.
func ParseConfig(data string) (*Config, error) { return parseConfig(data, newSecretFiles(false)) }

func parseConfig(data string, secrets *secretFiles) (*Config, error) {
	root, err := config.Parse(data)
	if err != nil {
		return nil, err
	}
	cfg := &Config{}
	cfg.Global.setDefaults()
	if t := root.Table("global", true); t != nil {
		cfg.Global.decode(t)
	}
	if t := root.Table("handler", !root.Has("aws")); t != nil {
		cfg.Handler = decodeCommandSection(t, !secrets.tool)
	}
	cfg.Primary = decodeCheckSection(root.Table("primary", true), "primary", fstaid.WithPrimary, secrets)
	cfg.Secondary = decodeCheckSection(root.Table("secondary", false), "secondary", fstaid.WithSecondary, secrets)
	cfg.Self = decodeCheckSection(root.Table("self", false), "self", fstaid.WithSelf, secrets)
	cfg.Users = decodeUsers(root, secrets)
	if t := root.Table("aws", false); t != nil {
		cfg.AWS = awsx.DecodeSection(t)
	}
	if t := root.Table("etcd", false); t != nil {
		cfg.decodeEtcd(t)
	}
	if t := root.Table("notify", false); t != nil {
		cfg.Notify = decodeNotifySection(t)
	}
	root.Done()
	cfg.validate(root.Problems())
	if err := root.Problems().Err(); err != nil {
		return nil, err
	}
	cfg.FileLock = fstaid.NewFileLock(cfg.LockFile())
	cfg.unreadSecrets = secrets.unread
	return cfg, nil
}

// setDefaults sets what [global] leaves out: the library's defaults, and
// the original's for the daemon's own keys.
func (g *Global) setDefaults() {
	g.Interval = fstaid.DefaultInterval
	g.MaxAttempts = fstaid.DefaultMaxAttempts
	g.Target = fstaid.DefaultTarget
	g.Mode = "debug"
	g.StartupCheck = "wait"
	g.ReadinessInterval = defaultReadinessInterval
	// The service's state directory, not /tmp: a lost lock re-arms.
	g.LockDir = "/var/lib/fstaidd"
	if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
		// systemd may pass several, colon-separated.
		g.LockDir, _, _ = strings.Cut(sd, ":")
	}
}

func (g *Global) decode(t *config.Table) {
	if p, ok := t.Int("port"); ok {
		if p < 1 || p > 65535 {
			t.Errorf("port", "must be between 1 and 65535, got %d", p)
		} else {
			g.Port = int(p)
		}
	} else if !t.Has("port") {
		t.Errorf("port", "is required")
	}
	if v, ok := t.Seconds("interval"); ok {
		if v <= 0 {
			t.Errorf("interval", "must be more than 0 seconds")
		}
		g.Interval = v
	}
	if n, ok := t.Int("maxattempts"); ok {
		if n < 1 || n > 1000 {
			t.Errorf("maxattempts", "must be between 1 and 1000, got %d", n)
		}
		g.MaxAttempts = int(n)
	}
	g.AttemptInterval, _ = t.Seconds("attempt_interval")
	if s, ok := t.String("lockdir"); ok && s != "" {
		g.LockDir = s
	}
	g.Log, _ = t.String("log")
	if m, ok := t.String("mode"); ok {
		if m != "debug" && m != "release" {
			t.Errorf("mode", `must be "debug" or "release", got %q`, m)
		}
		g.Mode = m
	}
	g.ContinueIfSelfCheckFailed, _ = t.Bool("continue_if_self_check_failed")
	if s, ok := t.String("startup_check"); ok {
		if s != "wait" && s != "exit" {
			t.Errorf("startup_check", `must be "wait" or "exit", got %q`, s)
		}
		g.StartupCheck = s
	}
	if s, ok := t.String("target"); ok && s != "" {
		g.Target = s
	}
	if s, ok := t.String("listen"); ok {
		if _, _, err := net.SplitHostPort(s); err != nil {
			t.Errorf("listen", "must be host:port: %v", err)
		}
		g.Listen = s
	}
	g.Journal, _ = t.Bool("journal")
	g.decodeReadiness(t)
	t.Done()
}

// options are the Monitor options [global] sets.
func (g *Global) options() []fstaid.Option {
	startup := fstaid.StartupCheckWait
	if g.StartupCheck == "exit" {
		startup = fstaid.StartupCheckFail
	}
	return []fstaid.Option{
		fstaid.WithTarget(g.Target),
		fstaid.WithInterval(g.Interval),
		fstaid.WithMaxAttempts(g.MaxAttempts),
		fstaid.WithAttemptInterval(g.AttemptInterval),
		fstaid.WithContinueIfSelfCheckFailed(g.ContinueIfSelfCheckFailed),
		fstaid.WithStartupCheck(startup),
		fstaid.WithReadiness(g.ReadinessInterval),
	}
}

// decodeCommandSection reads [handler]. checkExec: the command must be
// an executable file now, not at failover time; the tools (status, fail,
// unlock), which never run it, skip that, so that `fstaidd status` still
// shows a daemon whose handler a deploy removed (its readiness says so).
func decodeCommandSection(t *config.Table, checkExec bool) *CommandSection {
	s := &CommandSection{}
	s.Command, _ = t.String("command")
	s.script = fstaid.Script(s.Command)
	if s.Command == "" {
		t.Errorf("command", "is required")
	} else if err := s.script.Err(); err != nil {
		t.Errorf("command", "%v", err)
	} else if _, err := exec.LookPath(s.script.Path()); err != nil && checkExec {
		// The handler must exist and be executable now, not at failover
		// time.
		t.Errorf("command", "%s is not an executable file: %v", s.script.Path(), unwrapPath(err))
	}
	s.Timeout = requiredTimeout(t)
	t.Done()
	return s
}

// option is the Monitor option [handler] sets.
func (s *CommandSection) option() fstaid.Option {
	return fstaid.WithHandler("handler", s.script, s.Timeout)
}

func requiredTimeout(t *config.Table) time.Duration {
	v, ok := t.Seconds("timeout")
	if !ok {
		if !t.Has("timeout") {
			t.Errorf("timeout", "is required")
		}
		return 0
	}
	if v <= 0 {
		t.Errorf("timeout", "must be more than 0 seconds")
	}
	return v
}

func decodeCheckSection(t *config.Table, name string, with func(fstaid.Check, time.Duration) fstaid.Option, secrets *secretFiles) *CheckSection {
	if t == nil {
		return nil
	}
	s := &CheckSection{Name: name, with: with}
	s.Command, _ = t.String("command")
	s.HTTP, _ = t.String("http")
	s.TCP, _ = t.String("tcp")
	s.Proxy, _ = t.String("proxy")
	s.Username, _ = t.String("username")
	s.PasswordFile, _ = t.String("password_file")
	s.IMDS, _ = t.Bool("imds")
	set := 0
	for _, v := range []bool{s.Command != "", s.HTTP != "", s.TCP != "", s.IMDS} {
		if v {
			set++
		}
	}
	switch {
	case set == 0:
		t.Errorf("command", "is required (or a native check: http, tcp or imds)")
	case set > 1:
		t.Errorf("", "set only one of command, http, tcp and imds")
	}
	if s.Command != "" {
		// As the check will split it (see check).
		if err := fstaid.Command(s.Command).Err(); err != nil {
			t.Errorf("command", "%v", err)
		}
	}
	// URLs are only ever shown with their password redacted: a password
	// in a config error would reach the journal.
	urlCredentials := false
	if s.HTTP != "" {
		u, err := url.Parse(s.HTTP)
		urlCredentials = err == nil && u.User != nil
		switch {
		case err != nil:
			t.Errorf("http", "must be an http:// or https:// URL: %v", urlReason(err))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			t.Errorf("http", "must be an http:// or https:// URL, got %q", u.Redacted())
		case u.User != nil && (s.Username != "" || s.PasswordFile != ""):
			t.Errorf("username", "the http URL carries credentials too: give them in one place (preferably username and password_file)")
		}
	}
	s.readCredentials(t, secrets)
	s.httpOptions.decode(t, s.HTTP, urlCredentials || s.Username != "")
	if s.TCP != "" {
		if _, _, err := net.SplitHostPort(s.TCP); err != nil {
			t.Errorf("tcp", "must be host:port: %v", err)
		}
	}
	if s.Proxy != "" {
		if s.HTTP == "" {
			t.Errorf("proxy", "applies only to an http check")
		} else if u, err := url.Parse(s.Proxy); err != nil {
			t.Errorf("proxy", "must be a URL such as http://bastion:8080: %v", urlReason(err))
		} else if u.Host == "" {
			t.Errorf("proxy", "must be a URL such as http://bastion:8080, got %q", u.Redacted())
		}
	}
	s.Timeout = requiredTimeout(t)
	t.Done()
	return s
}

// readCredentials validates username and password_file and reads the
// password. No message shows the password or the file's content.
func (s *CheckSection) readCredentials(t *config.Table, secrets *secretFiles) {
	if s.Username == "" && s.PasswordFile == "" {
		return
	}
	switch {
	case s.HTTP == "":
		if s.Username != "" {
			t.Errorf("username", "applies only to an http check")
		}
		if s.PasswordFile != "" {
			t.Errorf("password_file", "applies only to an http check")
		}
		return
	case s.Username == "":
		t.Errorf("username", "is required with password_file")
		return
	case strings.Contains(s.Username, ":"):
		t.Errorf("username", "%q contains ':', which HTTP basic auth cannot carry in a user name", s.Username)
		return
	case s.PasswordFile == "":
		t.Errorf("password_file", "is required with username (a file holding the password alone)")
		return
	}
	s.password, _ = secrets.read(t, "password_file", s.PasswordFile)
}

// urlReason is why url.Parse refused a URL, without the URL itself (its
// error quotes the whole URL, password included).
func urlReason(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// unwrapPathError drops the path an *fs.PathError repeats.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// shownURL is rawURL as fstaidd prints it: its password redacted.
func shownURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}

func decodeUsers(root *config.Table, secrets *secretFiles) []User {
	var users []User
	seen := map[string]bool{}
	for _, t := range root.Tables("user") {
		var u User
		u.UserID, _ = t.String("userid")
		u.Password, _ = t.String("password")
		u.PasswordFile, _ = t.String("password_file")
		u.Role = RoleAdmin
		if r, ok := t.String("role"); ok {
			switch r {
			case RoleAdmin, RoleViewer:
				u.Role = r
			default:
				t.Errorf("role", "%q is not a role: want %q (may fail over, the default) or %q (/status and /metrics only)", r, RoleAdmin, RoleViewer)
			}
		}
		if u.UserID == "" {
			t.Errorf("userid", "is required")
		} else if strings.Contains(u.UserID, ":") {
			// Basic auth splits "user:password" at the first colon, so
			// such a user could never log in.
			t.Errorf("userid", "%q contains ':', which HTTP basic auth cannot carry in a user name", u.UserID)
		} else if seen[u.UserID] {
			t.Errorf("userid", "duplicate user %q", u.UserID)
		}
		seen[u.UserID] = true
		switch {
		case t.Has("password") && t.Has("password_file"):
			t.Errorf("password_file", "set password or password_file, not both")
		case t.Has("password_file"):
			pw, ok := secrets.read(t, "password_file", u.PasswordFile)
			u.Password = pw
			if ok && isBcrypt(pw) {
				u.checkBcrypt(t, "password_file")
			}
		case u.Password == "":
			t.Errorf("password", "is required (or password_file)")
		case isBcrypt(u.Password):
			u.checkBcrypt(t, "password")
		}
		t.Done()
		users = append(users, u)
	}
	return users
}

// checkBcrypt validates a bcrypt hash given by key.
func (u *User) checkBcrypt(t *config.Table, key string) {
	if cost, err := bcryptCost(u.Password); err != nil {
		t.Errorf(key, "looks like a bcrypt hash but is not one: %v", err)
	} else if cost > maxBcryptCost {
		t.Errorf(key, "bcrypt cost %d is above %d: every login would cost too much CPU", cost, maxBcryptCost)
	}
}

// validate checks what needs more than one section.
func (c *Config) validate(p *config.Problems) {
	if len(c.Users) == 0 && c.Global.Listen != "" && !isLoopback(c.Global.Listen) {
		p.At(config.TableName("global"), "listen", "%s is not a loopback address and no [[user]] is configured: anyone could fail over", c.Global.Listen)
	}
}

func unwrapPath(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// isLoopback reports whether a host:port binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Options turns the config into Monitor options (without the lock,
// logger and observers, which the daemon adds). The AWS handlers, if
// any, come first, so that a notification script sees the new state.
//
// awsOpts are added to every AWS handler's options (the daemon's
// readiness call counter).
func (c *Config) Options(ctx context.Context, logger *slog.Logger, awsOpts ...awsx.Option) ([]fstaid.Option, error) {
	opts := c.Global.options()
	debug := c.Global.Mode == "debug"
	for _, s := range []*CheckSection{c.Primary, c.Secondary, c.Self} {
		if s == nil {
			continue
		}
		check, err := s.check(c, debug)
		if err != nil {
			return nil, err
		}
		if s.InsecureSkipVerify {
			logger.Warn("the check does not verify the target's TLS certificate (insecure_skip_verify): anyone on the path can answer for it", "check", s.Name)
		}
		opts = append(opts, s.with(check, s.Timeout))
	}
	hs, err := c.awsHandlers(ctx, logger, awsOpts...)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		opts = append(opts, fstaid.WithHandler(h.Name(), h, h.Timeout()))
	}
	if c.Handler != nil {
		opts = append(opts, c.Handler.option())
	}
	return opts, nil
}

func (s *CheckSection) check(c *Config, debug bool) (fstaid.Check, error) {
	switch {
	case s.IMDS:
		return c.imdsCheck()
	case s.HTTP != "":
		c := fstaid.HTTP(s.HTTP)
		if s.Username != "" {
			c.User = url.UserPassword(s.Username, s.password)
		}
		if s.Proxy != "" {
			u, err := url.Parse(s.Proxy)
			if err != nil {
				return nil, fmt.Errorf("[%s] proxy: %w", s.Name, urlReason(err))
			}
			c.Proxy = u
		}
		c.Header = s.Header
		c.TLSClientConfig = s.tls
		return c, nil
	case s.TCP != "":
		return fstaid.TCP(s.TCP), nil
	default:
		c := fstaid.Command(s.Command)
		c.LogStdout = debug
		return c, nil
	}
}
