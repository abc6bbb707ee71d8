// Command fstaidd is the fstaid failover monitor as a systemd service:
// it reads an fstaid.toml (the original's format, extended), serves
// POST /fail, /status, /ping and /metrics, and exits with a status that
// tells systemd whether to restart it (see the README's table).
//
//	fstaidd [-config /etc/fstaidd/fstaidd.toml]   run the monitor
//	fstaidd [-i INSTANCE]                         the same with /etc/fstaidd/INSTANCE.toml
//	fstaidd check   [-config ...]                 validate config and environment
//	fstaidd fail    [-config ...] [-reason TEXT] [-yes] [-exit N]  ask the running daemon to fail over
//	fstaidd status  [-config ...] [-json]          the daemon's state, last rounds and record, or the lock
//	fstaidd unlock  [-config ...] [-yes]          show the record; remove it with -yes
//	fstaidd demo                                  watch a throwaway target die, on loopback
//	fstaidd version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"
)

// Set by the build (-ldflags "-X main.buildVersion=... -X main.buildCommit=...").
var (
	buildVersion = "dev"
	buildCommit  = ""
)

func version() string { return buildVersion + " (commit " + commit() + ")" }

// commit is the commit fstaidd was built from: -ldflags, else the Go
// toolchain's VCS stamp, else "unknown".
func commit() string {
	commit := buildCommit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					commit = s.Value
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return commit
}

func main() {
	tuneGC(os.Getenv) // memory.go
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs fstaidd with args and returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("fstaidd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", defaultConfig, "configuration file")
	instance := fs.String("i", "", "instance of fstaidd@.service: -i db1 means -config "+instanceConfig("db1")+
		" and the lock directory "+instanceStateDir+"/db1 (instance.go)")
	// parseFails parses args and resolves -i into config; -h is an
	// answer, not an error: the command's own flags on stdout, status 0
	// (help).
	help := -1
	parseFails := func(status int) bool {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			help = 0
			return true
		}
		if err == nil {
			given := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
			*config, err = resolveConfig(given, *instance, *config)
			if err != nil {
				fmt.Fprintln(fs.Output(), err)
			}
		}
		if err != nil {
			help = status
			return true
		}
		return false
	}
	fs.Usage = func() {
		out := fs.Output()
		if cmd == "run" {
			fmt.Fprintln(out, usage)
			fmt.Fprintln(out, "\nflags of fstaidd (run):")
		} else {
			fmt.Fprintf(out, "usage of fstaidd %s:\n", cmd)
		}
		fs.PrintDefaults()
	}
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		fs.SetOutput(stdout) // asked for: not an error
	}
	switch cmd {
	case "run":
		showVersion := fs.Bool("version", false, "print the version and exit (the original fstaid's flag)")
		if parseFails(exitConfig) {
			return help
		}
		if *showVersion {
			fmt.Fprintln(stdout, "fstaidd", version())
			return 0
		}
		d := &daemon{configPath: *config, stderr: stderr}
		return d.run(ctx)
	case "check":
		if parseFails(2) {
			return help
		}
		return cmdCheck(ctx, *config, stdout)
	case "fail":
		var f failFlags
		f.register(fs, "the config's first admin [[user]]")
		fs.IntVar(&f.exit, "exit", 1, "exit status the handler sees for both checks")
		fs.StringVar(&f.reason, "reason", "", fmt.Sprintf("why, kept in the failover record next to who asked (one line, at most %d bytes)", maxReason))
		fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation (asked only when stdin is a terminal)")
		if parseFails(2) {
			return help
		}
		return cmdFail(ctx, *config, &f, stdin, stdout, stderr)
	case "status":
		var f statusFlags
		f.register(fs, "the config's first [[user]]")
		fs.BoolVar(&f.json, "json", false, "print the machine form: the daemon's /status, or the lock and etcd as read here")
		fs.IntVar(&f.rounds, "rounds", 5, fmt.Sprintf("how many recent rounds to show (the daemon keeps %d)", recentRounds))
		if parseFails(2) {
			return help
		}
		return cmdStatus(ctx, *config, &f, stdout, stderr)
	case "unlock":
		yes := fs.Bool("yes", false, "remove the record (without it, only show it)")
		if parseFails(2) {
			return help
		}
		return cmdUnlock(ctx, *config, *yes, stdout, stderr)
	case "demo":
		if parseFails(2) {
			return help
		}
		return cmdDemo(ctx, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "fstaidd", version())
		return 0
	case "help":
		fmt.Fprintln(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "fstaidd: unknown command %q\n%s\n", cmd, usage)
	return 2
}

const usage = `usage:
  fstaidd [-config /etc/fstaidd/fstaidd.toml]   run the monitor
  fstaidd COMMAND -i INSTANCE ...               any command, for fstaidd@INSTANCE.service:
                                                -config /etc/fstaidd/INSTANCE.toml
  fstaidd check   [-config FILE]                validate the config and the environment
  fstaidd fail    [-config FILE] [-reason TEXT] [-yes] [-exit N]
                                                ask the running daemon to fail over (asks first on a terminal)
  fstaidd status  [-config FILE] [-json] [-rounds N]
                                                the state and since when, the last rounds, the record
                                                (the lock and etcd when the daemon is down); -json for machines
  fstaidd unlock  [-config FILE] [-yes]         show the failover record; remove it with -yes
  fstaidd demo                                  watch a throwaway target die (loopback only)
  fstaidd version                               (also fstaidd -version, as the original)
  fstaidd help                                  this text; COMMAND -h lists a command's flags`
