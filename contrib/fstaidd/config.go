package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-multierror"

	"github.com/fstaid/fstaid"
	awsx "github.com/fstaid/fstaid/contrib/aws"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// errConfig marks configuration errors (exit status 78).
var errConfig = errors.New("fstaidd: configuration error")

// Config is fstaidd.toml: the original fstaid.toml, unchanged in meaning,
// plus extensions. Every duration is in seconds, fractions allowed.
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

	// ext holds the extension sections ([aws], [etcd]) for their packages.
	ext map[string]any
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
}

// CommandSection is a command with a timeout: [handler].
type CommandSection struct {
	Command string
	Timeout time.Duration
}

// CheckSection is [primary], [secondary] or [self]: exactly one of a
// command (the original), a native HTTP URL or a TCP address.
type CheckSection struct {
	Name    string
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
	// IMDS is the native IMDSv2 check ([aws.imds] configures it).
	IMDS    bool
	Timeout time.Duration
}

// User is one [[user]] for basic auth; Password is plain text or a bcrypt
// hash ($2a$, $2b$, $2y$).
type User struct {
	UserID   string
	Password string
}

// Limits on what the config accepts.
const (
	maxSeconds    = 365 * 24 * 3600 // one year: anything longer is a typo
	maxBcryptCost = 12              // bounds the CPU one login attempt costs
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

// LoadConfig reads and validates path; the error lists every problem.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	cfg, err := ParseConfig(string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig parses and validates a config. Syntax errors stop at the
// first; every other problem is collected, each naming its section and
// key.
func ParseConfig(data string) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(data, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("TOML syntax, line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("TOML: %w", err)
	}
	d := &decoder{}
	cfg := &Config{ext: map[string]any{}}
	root := d.table("", raw)
	if g := root.subtable("global", true); g != nil {
		d.global(g, &cfg.Global)
	}
	_, hasAWS := raw["aws"]
	if h := root.subtable("handler", !hasAWS); h != nil {
		cfg.Handler = d.commandSection(h)
	}
	cfg.Primary = d.checkSection(root.subtable("primary", true), "primary")
	cfg.Secondary = d.checkSection(root.subtable("secondary", false), "secondary")
	cfg.Self = d.checkSection(root.subtable("self", false), "self")
	cfg.Users = d.users(root)
	for _, ext := range extensionSections {
		if v, ok := root.take(ext); ok {
			cfg.ext[ext] = v
		}
	}
	root.rejectUnknown()
	d.aws(cfg)
	d.etcd(cfg)
	d.defaults(cfg)
	d.validate(cfg)
	if d.errs != nil {
		d.errs.ErrorFormat = listErrors
		return nil, d.errs
	}
	return cfg, nil
}

// extensionSections are decoded by the packages that own them.
var extensionSections = []string{"aws", "etcd"}

func listErrors(errs []error) string {
	if len(errs) == 1 {
		return errs[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(errs))
	for _, e := range errs {
		b.WriteString("\n  * ")
		b.WriteString(e.Error())
	}
	return b.String()
}

type decoder struct {
	errs *multierror.Error
}

func (d *decoder) errorf(section, key, format string, args ...any) {
	where := "[" + section + "]"
	if section == "" {
		where = "top level"
	}
	if key != "" {
		where += " " + key
	}
	d.errs = multierror.Append(d.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

// table is one TOML table being decoded; every key read is marked, so
// the rest can be reported as unknown.
type table struct {
	d    *decoder
	name string
	m    map[string]any
	used map[string]bool
}

func (d *decoder) table(name string, m map[string]any) *table {
	return &table{d: d, name: name, m: m, used: map[string]bool{}}
}

func (t *table) take(key string) (any, bool) {
	v, ok := t.m[key]
	if ok {
		t.used[key] = true
	}
	return v, ok
}

func (t *table) subtable(key string, required bool) *table {
	v, ok := t.take(key)
	if !ok {
		if required {
			t.d.errorf(key, "", "section is required")
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.d.errorf(t.name, key, "must be a table ([%s]), got %s", key, typeName(v))
		return nil
	}
	return t.d.table(key, m)
}

func (t *table) rejectUnknown() {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		if !t.used[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if hint := suggest(k); hint != "" {
			t.d.errorf(t.name, k, "unknown key (did you mean %q?)", hint)
		} else {
			t.d.errorf(t.name, k, "unknown key")
		}
	}
}

// knownKeys feed the "did you mean" hints for typos such as maxattempt.
var knownKeys = []string{
	"port", "interval", "maxattempts", "attempt_interval", "lockdir", "log", "mode",
	"continue_if_self_check_failed", "startup_check", "target", "listen", "journal",
	"command", "timeout", "http", "tcp", "proxy", "imds", "userid", "password",
	"username", "password_file",
}

func suggest(k string) string {
	for _, known := range knownKeys {
		if k != known && (strings.HasPrefix(known, k) || strings.HasPrefix(k, known) ||
			strings.ReplaceAll(k, "_", "") == strings.ReplaceAll(known, "_", "")) {
			return known
		}
	}
	return ""
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("%T", v)
}

func (t *table) str(key string) (string, bool) {
	v, ok := t.take(key)
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.errorf(t.name, key, "must be a string, got %s", typeName(v))
		return "", false
	}
	return s, true
}

func (t *table) boolean(key string) (bool, bool) {
	v, ok := t.take(key)
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		t.d.errorf(t.name, key, "must be true or false, got %s", typeName(v))
		return false, false
	}
	return b, true
}

func (t *table) integer(key string) (int64, bool) {
	v, ok := t.take(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	}
	t.d.errorf(t.name, key, "must be a whole number, got %s", typeName(v))
	return 0, false
}

// seconds reads a duration in seconds: an integer or a float, finite,
// not negative, at most a year.
func (t *table) seconds(key string) (time.Duration, bool) {
	v, ok := t.take(key)
	if !ok {
		return 0, false
	}
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		t.d.errorf(t.name, key, "must be a number of seconds, got %s", typeName(v))
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxSeconds {
		t.d.errorf(t.name, key, "must be between 0 and %d seconds, got %v", maxSeconds, f)
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func (d *decoder) global(t *table, g *Global) {
	if p, ok := t.integer("port"); ok {
		if p < 1 || p > 65535 {
			d.errorf("global", "port", "must be between 1 and 65535, got %d", p)
		} else {
			g.Port = int(p)
		}
	} else if _, present := t.m["port"]; !present {
		d.errorf("global", "port", "is required")
	}
	g.Interval = -1
	if v, ok := t.seconds("interval"); ok {
		if v <= 0 {
			d.errorf("global", "interval", "must be more than 0 seconds")
		}
		g.Interval = v
	}
	g.MaxAttempts = -1
	if n, ok := t.integer("maxattempts"); ok {
		if n < 1 || n > 1000 {
			d.errorf("global", "maxattempts", "must be between 1 and 1000, got %d", n)
		}
		g.MaxAttempts = int(n)
	}
	g.AttemptInterval, _ = t.seconds("attempt_interval")
	g.LockDir, _ = t.str("lockdir")
	g.Log, _ = t.str("log")
	if m, ok := t.str("mode"); ok {
		if m != "debug" && m != "release" {
			d.errorf("global", "mode", `must be "debug" or "release", got %q`, m)
		}
		g.Mode = m
	}
	g.ContinueIfSelfCheckFailed, _ = t.boolean("continue_if_self_check_failed")
	if s, ok := t.str("startup_check"); ok {
		if s != "wait" && s != "exit" {
			d.errorf("global", "startup_check", `must be "wait" or "exit", got %q`, s)
		}
		g.StartupCheck = s
	}
	g.Target, _ = t.str("target")
	if s, ok := t.str("listen"); ok {
		if _, _, err := net.SplitHostPort(s); err != nil {
			d.errorf("global", "listen", "must be host:port: %v", err)
		}
		g.Listen = s
	}
	g.Journal, _ = t.boolean("journal")
	t.rejectUnknown()
}

func (d *decoder) commandSection(t *table) *CommandSection {
	s := &CommandSection{}
	if c, ok := t.str("command"); ok {
		s.Command = c
	}
	if s.Command == "" {
		d.errorf(t.name, "command", "is required")
	} else if _, err := fstaid.SplitCommand(s.Command); err != nil {
		d.errorf(t.name, "command", "%v", err)
	}
	s.Timeout = d.requiredTimeout(t)
	t.rejectUnknown()
	return s
}

func (d *decoder) requiredTimeout(t *table) time.Duration {
	v, ok := t.seconds("timeout")
	if !ok {
		if _, present := t.m["timeout"]; !present {
			d.errorf(t.name, "timeout", "is required")
		}
		return 0
	}
	if v <= 0 {
		d.errorf(t.name, "timeout", "must be more than 0 seconds")
	}
	return v
}

func (d *decoder) checkSection(t *table, name string) *CheckSection {
	if t == nil {
		return nil
	}
	s := &CheckSection{Name: name}
	s.Command, _ = t.str("command")
	s.HTTP, _ = t.str("http")
	s.TCP, _ = t.str("tcp")
	s.Proxy, _ = t.str("proxy")
	s.Username, _ = t.str("username")
	s.PasswordFile, _ = t.str("password_file")
	s.IMDS, _ = t.boolean("imds")
	set := 0
	for _, v := range []bool{s.Command != "", s.HTTP != "", s.TCP != "", s.IMDS} {
		if v {
			set++
		}
	}
	switch {
	case set == 0:
		d.errorf(name, "command", "is required (or a native check: http, tcp or imds)")
	case set > 1:
		d.errorf(name, "", "set only one of command, http, tcp and imds")
	}
	if s.Command != "" {
		if _, err := fstaid.SplitCommand(s.Command); err != nil {
			d.errorf(name, "command", "%v", err)
		}
	}
	// URLs are only ever shown with their password redacted: a password
	// in a config error would reach the journal.
	if s.HTTP != "" {
		u, err := url.Parse(s.HTTP)
		switch {
		case err != nil:
			d.errorf(name, "http", "must be an http:// or https:// URL: %v", urlReason(err))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			d.errorf(name, "http", "must be an http:// or https:// URL, got %q", u.Redacted())
		case u.User != nil && (s.Username != "" || s.PasswordFile != ""):
			d.errorf(name, "username", "the http URL carries credentials too: give them in one place (preferably username and password_file)")
		}
	}
	d.checkCredentials(s)
	if s.TCP != "" {
		if _, _, err := net.SplitHostPort(s.TCP); err != nil {
			d.errorf(name, "tcp", "must be host:port: %v", err)
		}
	}
	if s.Proxy != "" {
		if s.HTTP == "" {
			d.errorf(name, "proxy", "applies only to an http check")
		} else if u, err := url.Parse(s.Proxy); err != nil {
			d.errorf(name, "proxy", "must be a URL such as http://bastion:8080: %v", urlReason(err))
		} else if u.Host == "" {
			d.errorf(name, "proxy", "must be a URL such as http://bastion:8080, got %q", u.Redacted())
		}
	}
	s.Timeout = d.requiredTimeout(t)
	t.rejectUnknown()
	return s
}

// maxPasswordFile bounds what password_file may hold: a password, not a
// device that never ends.
const maxPasswordFile = 4 << 10

// checkCredentials validates username and password_file and reads the
// password. No message shows the password or the file's content.
func (d *decoder) checkCredentials(s *CheckSection) {
	if s.Username == "" && s.PasswordFile == "" {
		return
	}
	switch {
	case s.HTTP == "":
		if s.Username != "" {
			d.errorf(s.Name, "username", "applies only to an http check")
		}
		if s.PasswordFile != "" {
			d.errorf(s.Name, "password_file", "applies only to an http check")
		}
		return
	case s.Username == "":
		d.errorf(s.Name, "username", "is required with password_file")
		return
	case strings.Contains(s.Username, ":"):
		d.errorf(s.Name, "username", "%q contains ':', which HTTP basic auth cannot carry in a user name", s.Username)
		return
	case s.PasswordFile == "":
		d.errorf(s.Name, "password_file", "is required with username (a file holding the password alone)")
		return
	case !filepath.IsAbs(s.PasswordFile):
		d.errorf(s.Name, "password_file", "must be an absolute path, got %q", s.PasswordFile)
		return
	}
	f, err := os.Open(s.PasswordFile)
	if err != nil {
		d.errorf(s.Name, "password_file", "cannot read %s: %v", s.PasswordFile, unwrapPathError(err))
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	switch {
	case err != nil:
		d.errorf(s.Name, "password_file", "cannot read %s: %v", s.PasswordFile, unwrapPathError(err))
		return
	case len(data) > maxPasswordFile:
		d.errorf(s.Name, "password_file", "%s holds more than %d bytes: want the password alone", s.PasswordFile, maxPasswordFile)
		return
	}
	// A final newline (echo secret > file) is not part of the password.
	pw := strings.TrimRight(string(data), "\r\n")
	if pw == "" {
		d.errorf(s.Name, "password_file", "%s is empty", s.PasswordFile)
		return
	}
	s.password = pw
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

func (d *decoder) users(root *table) []User {
	v, ok := root.take("user")
	if !ok {
		return nil
	}
	arr, ok := v.([]map[string]any)
	if !ok {
		d.errorf("", "user", "must be an array of tables ([[user]]), got %s", typeName(v))
		return nil
	}
	var users []User
	seen := map[string]bool{}
	for i, m := range arr {
		t := d.table(fmt.Sprintf("user %d", i+1), m)
		var u User
		u.UserID, _ = t.str("userid")
		u.Password, _ = t.str("password")
		if u.UserID == "" {
			d.errorf(t.name, "userid", "is required")
		} else if strings.Contains(u.UserID, ":") {
			// Basic auth splits "user:password" at the first colon, so
			// such a user could never log in.
			d.errorf(t.name, "userid", "%q contains ':', which HTTP basic auth cannot carry in a user name", u.UserID)
		} else if seen[u.UserID] {
			d.errorf(t.name, "userid", "duplicate user %q", u.UserID)
		}
		seen[u.UserID] = true
		if u.Password == "" {
			d.errorf(t.name, "password", "is required")
		} else if isBcrypt(u.Password) {
			if cost, err := bcryptCost(u.Password); err != nil {
				d.errorf(t.name, "password", "looks like a bcrypt hash but is not one: %v", err)
			} else if cost > maxBcryptCost {
				d.errorf(t.name, "password", "bcrypt cost %d is above %d: every login would cost too much CPU", cost, maxBcryptCost)
			}
		}
		t.rejectUnknown()
		users = append(users, u)
	}
	return users
}

// defaults fills what the original defaulted, and the extensions'.
func (d *decoder) defaults(c *Config) {
	g := &c.Global
	if g.Interval < 0 {
		g.Interval = time.Second
	}
	if g.MaxAttempts < 0 {
		g.MaxAttempts = fstaid.DefaultMaxAttempts
	}
	if g.Mode == "" {
		g.Mode = "debug"
	}
	if g.StartupCheck == "" {
		g.StartupCheck = "wait"
	}
	if g.Target == "" {
		g.Target = fstaid.DefaultTarget
	}
	if g.LockDir == "" {
		// The service's state directory, not /tmp: a lost lock re-arms.
		g.LockDir = "/var/lib/fstaidd"
		if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
			// systemd may pass several, colon-separated.
			g.LockDir, _, _ = strings.Cut(sd, ":")
		}
	}
}

// validate checks what needs more than one key, and the environment the
// config names: the handler must exist and be executable now, not at
// failover time.
func (d *decoder) validate(c *Config) {
	if c.Handler != nil && c.Handler.Command != "" {
		if args, err := fstaid.SplitCommand(c.Handler.Command); err == nil {
			if _, err := exec.LookPath(args[0]); err != nil {
				d.errorf("handler", "command", "%s is not an executable file: %v", args[0], unwrapPath(err))
			}
		}
	}
	if len(c.Users) == 0 && c.Global.Listen != "" && !isLoopback(c.Global.Listen) {
		d.errorf("global", "listen", "%s is not a loopback address and no [[user]] is configured: anyone could fail over", c.Global.Listen)
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
func (c *Config) Options(ctx context.Context, logger *slog.Logger) ([]fstaid.Option, error) {
	g := &c.Global
	opts := []fstaid.Option{
		fstaid.WithTarget(g.Target),
		fstaid.WithInterval(g.Interval),
		fstaid.WithMaxAttempts(g.MaxAttempts),
		fstaid.WithAttemptInterval(g.AttemptInterval),
		fstaid.WithContinueIfSelfCheckFailed(g.ContinueIfSelfCheckFailed),
		fstaid.WithStartupCheck(fstaid.StartupCheckWait),
	}
	if g.StartupCheck == "exit" {
		opts[len(opts)-1] = fstaid.WithStartupCheck(fstaid.StartupCheckFail)
	}
	debug := g.Mode == "debug"
	for _, s := range []*CheckSection{c.Primary, c.Secondary, c.Self} {
		if s == nil {
			continue
		}
		check, err := s.check(c, debug)
		if err != nil {
			return nil, err
		}
		switch s.Name {
		case "primary":
			opts = append(opts, fstaid.WithPrimary(check, s.Timeout))
		case "secondary":
			opts = append(opts, fstaid.WithSecondary(check, s.Timeout))
		case "self":
			opts = append(opts, fstaid.WithSelf(check, s.Timeout))
		}
	}
	hs, err := c.awsHandlers(ctx, logger)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		opts = append(opts, fstaid.WithHandler(h.Name(), h, h.Timeout()))
	}
	if c.Handler != nil {
		opts = append(opts, fstaid.WithHandler("handler", fstaid.CommandHandler(c.Handler.Command), c.Handler.Timeout))
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
		return c, nil
	case s.TCP != "":
		return fstaid.TCP(s.TCP), nil
	default:
		c := fstaid.Command(s.Command)
		c.LogStdout = debug
		return c, nil
	}
}
