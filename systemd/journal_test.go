package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestJournalStream(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  string
		want bool
	}{
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false}, // another stream: stderr was redirected
		{fmt.Sprintf("%d:%d", st.Dev+1, st.Ino), false},
		{"", false},
		{"garbage", false},
	} {
		t.Setenv("JOURNAL_STREAM", tc.env)
		if got := JournalStream(); got != tc.want {
			t.Errorf("JOURNAL_STREAM=%q, stderr %d:%d: JournalStream() = %v, want %v", tc.env, st.Dev, st.Ino, got, tc.want)
		}
	}
}

// entry is what one Handle call hands to journald.
type entry struct {
	msg  string
	prio journal.Priority
	vars map[string]string
}

// capture collects what the handler would send, for checking the mapping
// from slog records to journal fields without a journald;
// TestJournaldReceivesFields checks the same path end to end.
type capture struct {
	mu      sync.Mutex
	entries []entry
}

func (c *capture) send(msg string, p journal.Priority, vars map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, entry{msg, p, maps.Clone(vars)})
	return nil
}

func (c *capture) take(t *testing.T) entry {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) != 1 {
		t.Fatalf("%d entries sent, want 1: %v", len(c.entries), c.entries)
	}
	e := c.entries[0]
	c.entries = nil
	return e
}

func capturing(o *JournalOptions) (*slog.Logger, *capture) {
	c := &capture{}
	h := NewJournalHandler(o).(*journalHandler)
	h.send = c.send
	return slog.New(h), c
}

type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("<redacted>") }

func TestJournalHandlerFields(t *testing.T) {
	when := time.Date(2026, 11, 22, 8, 0, 0, 5, time.UTC)
	longKey := strings.Repeat("k", 80)
	for _, tc := range []struct {
		name     string
		log      func(*slog.Logger)
		wantMsg  string
		wantPrio journal.Priority
		want     map[string]string // besides SYSLOG_IDENTIFIER=fstaidd
	}{{
		name: "check result",
		log: func(l *slog.Logger) {
			l.Error("check failed", "check", "primary", "exit_status", 1, "timed_out", true, "event", "round")
		},
		wantMsg: "check failed check=primary exit_status=1 timed_out=true event=round", wantPrio: journal.PriErr,
		want: map[string]string{"FSTAID_CHECK": "primary", "FSTAID_EXIT_STATUS": "1", "FSTAID_TIMED_OUT": "true", "FSTAID_EVENT": "round"},
	}, {
		name:    "warn",
		log:     func(l *slog.Logger) { l.Warn("unarmed") },
		wantMsg: "unarmed", wantPrio: journal.PriWarning, want: map[string]string{},
	}, {
		name:    "info",
		log:     func(l *slog.Logger) { l.Info("armed", "interval", time.Second) },
		wantMsg: "armed interval=1s", wantPrio: journal.PriInfo, want: map[string]string{"FSTAID_INTERVAL": "1s"},
	}, {
		name:    "debug",
		log:     func(l *slog.Logger) { l.Debug("output", "line", "ok") },
		wantMsg: "output line=ok", wantPrio: journal.PriDebug, want: map[string]string{"FSTAID_LINE": "ok"},
	}, {
		name:    "above error",
		log:     func(l *slog.Logger) { l.Log(t.Context(), slog.LevelError+4, "fatal") },
		wantMsg: "fatal", wantPrio: journal.PriErr, want: map[string]string{},
	}, {
		name: "groups and With",
		log: func(l *slog.Logger) {
			l.With("target", "db1").WithGroup("http").With("url", "http://db1/").
				Info("probe", "status", 503, slog.Group("timing", "total", 2*time.Second), slog.Group("empty"))
		},
		wantMsg: "probe target=db1 http.url=http://db1/ http.status=503 http.timing.total=2s", wantPrio: journal.PriInfo,
		want: map[string]string{"FSTAID_TARGET": "db1", "FSTAID_HTTP_URL": "http://db1/", "FSTAID_HTTP_STATUS": "503", "FSTAID_HTTP_TIMING_TOTAL": "2s"},
	}, {
		name:    "group without attributes is dropped",
		log:     func(l *slog.Logger) { l.WithGroup("g").Info("m") },
		wantMsg: "m", wantPrio: journal.PriInfo, want: map[string]string{},
	}, {
		name:    "inline group and empty attribute",
		log:     func(l *slog.Logger) { l.Info("m", slog.Group("", "a", 1), slog.Attr{}, "", "no key") },
		wantMsg: "m a=1", wantPrio: journal.PriInfo, want: map[string]string{"FSTAID_A": "1"},
	}, {
		name: "quoting for people, raw values for fields",
		log: func(l *slog.Logger) {
			l.Info("failover", "reason", "primary failed: exit 1", "out", "a\nb", "eq", "a=b", "q", `say "hi"`, "empty", "")
		},
		wantMsg: `failover reason="primary failed: exit 1" out="a\nb" eq="a=b" q="say \"hi\"" empty=""`, wantPrio: journal.PriInfo,
		want: map[string]string{"FSTAID_REASON": "primary failed: exit 1", "FSTAID_OUT": "a\nb", "FSTAID_EQ": "a=b", "FSTAID_Q": `say "hi"`, "FSTAID_EMPTY": ""},
	}, {
		name:    "field names",
		log:     func(l *slog.Logger) { l.Info("m", "lock-dir", "/x", "Ünï", 1, "v1.2", 2, longKey, 3) },
		wantMsg: "m lock-dir=/x Ünï=1 v1.2=2 " + longKey + "=3", wantPrio: journal.PriInfo,
		want: map[string]string{"FSTAID_LOCK_DIR": "/x", "FSTAID__N_": "1", "FSTAID_V1_2": "2", ("FSTAID_" + strings.Repeat("K", 80))[:64]: "3"},
	}, {
		name: "values",
		log: func(l *slog.Logger) {
			l.Info("m", "err", errors.New("boom"), "at", when, "pw", secret("hunter2"), "f", 1.5)
		},
		wantMsg: "m err=boom at=2026-11-22T08:00:00.000000005Z pw=<redacted> f=1.5", wantPrio: journal.PriInfo,
		want: map[string]string{"FSTAID_ERR": "boom", "FSTAID_AT": "2026-11-22T08:00:00.000000005Z", "FSTAID_PW": "<redacted>", "FSTAID_F": "1.5"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l, c := capturing(&JournalOptions{HandlerOptions: slog.HandlerOptions{Level: slog.LevelDebug}})
			tc.log(l)
			e := c.take(t)
			want := maps.Clone(tc.want)
			want["SYSLOG_IDENTIFIER"] = "fstaidd"
			if e.msg != tc.wantMsg || e.prio != tc.wantPrio || !maps.Equal(e.vars, want) {
				t.Errorf("sent\n MESSAGE=%q PRIORITY=%d %q\nwant\n MESSAGE=%q PRIORITY=%d %q",
					e.msg, e.prio, e.vars, tc.wantMsg, tc.wantPrio, want)
			}
		})
	}
}

func TestJournalHandlerOptions(t *testing.T) {
	t.Run("level", func(t *testing.T) {
		l, c := capturing(nil)
		l.Debug("hidden")
		if len(c.entries) != 0 {
			t.Errorf("debug sent at the default level: %v", c.entries)
		}
		l, c = capturing(&JournalOptions{HandlerOptions: slog.HandlerOptions{Level: slog.LevelWarn}})
		l.Info("hidden")
		l.Warn("shown")
		if e := c.take(t); e.msg != "shown" {
			t.Errorf("sent %q, want only the warning", e.msg)
		}
	})
	t.Run("identifier", func(t *testing.T) {
		l, c := capturing(&JournalOptions{Identifier: "fstaidd-db"})
		l.Info("m")
		if got := c.take(t).vars["SYSLOG_IDENTIFIER"]; got != "fstaidd-db" {
			t.Errorf("SYSLOG_IDENTIFIER=%q, want fstaidd-db", got)
		}
	})
	t.Run("ReplaceAttr", func(t *testing.T) {
		var seen []string
		l, c := capturing(&JournalOptions{HandlerOptions: slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				seen = append(seen, strings.Join(append(groups, a.Key), "."))
				if a.Key == "password" {
					a.Value = slog.StringValue("***")
				}
				if a.Key == "drop" {
					return slog.Attr{}
				}
				return a
			},
		}})
		l.WithGroup("user").Info("auth", "name", "ops", "password", "pw", "drop", 1)
		e := c.take(t)
		if e.msg != "auth user.name=ops user.password=***" || e.vars["FSTAID_USER_PASSWORD"] != "***" || e.vars["FSTAID_USER_DROP"] != "" {
			t.Errorf("sent %q %q, want the password replaced and drop dropped", e.msg, e.vars)
		}
		if want := "user.name user.password user.drop"; strings.Join(seen, " ") != want {
			t.Errorf("ReplaceAttr saw %v, want %s", seen, want)
		}
	})
	t.Run("AddSource", func(t *testing.T) {
		l, c := capturing(&JournalOptions{HandlerOptions: slog.HandlerOptions{AddSource: true}})
		l.Info("m")
		v := c.take(t).vars
		if !strings.HasSuffix(v["CODE_FILE"], "/journal_test.go") || v["CODE_LINE"] == "" || !strings.HasSuffix(v["CODE_FUNC"], "TestJournalHandlerOptions.func4") {
			t.Errorf("CODE_FILE=%q CODE_LINE=%q CODE_FUNC=%q, want this test's call site", v["CODE_FILE"], v["CODE_LINE"], v["CODE_FUNC"])
		}
	})
}

func TestJournalHandlerFallsBackToStderr(t *testing.T) {
	// journald down: the line still goes to stderr, with the priority
	// prefix journald's stream reader understands.
	h := NewJournalHandler(nil).(*journalHandler)
	boom := errors.New("no journald")
	h.send = func(string, journal.Priority, map[string]string) error { return boom }
	var buf bytes.Buffer
	h.fallback = &buf
	l := slog.New(h)
	l.Error("failover done", "handler", "eip")
	err := h.Handle(t.Context(), slog.NewRecord(time.Now(), slog.LevelWarn, "two\nlines", 0))
	if want := "<3>failover done handler=eip\n<4>two lines\n"; buf.String() != want {
		t.Errorf("stderr got %q, want %q", buf.String(), want)
	}
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "systemd: journal: ") {
		t.Errorf("Handle() = %v, want a \"systemd: journal: \" error wrapping the send error", err)
	}
}

func TestJournalHandlerConcurrent(t *testing.T) {
	l, c := capturing(nil)
	l = l.With("shared", 1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			li := l.WithGroup(fmt.Sprint("g", i)).With("i", i)
			for range 50 {
				li.Info("m", "x", i)
			}
		})
	}
	wg.Wait()
	if len(c.entries) != 400 {
		t.Fatalf("%d entries, want 400", len(c.entries))
	}
	for _, e := range c.entries {
		i := e.vars["FSTAID_SHARED"]
		if i != "1" || len(e.vars) != 4 {
			t.Fatalf("entry %q %q mixes attributes of other loggers", e.msg, e.vars)
		}
	}
}
