package systemd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/journal"
)

// JournalStream reports whether stderr is connected to the journal: the
// device and inode in JOURNAL_STREAM (set by systemd for StandardError=
// journal) equal stderr's. A journal merely existing on the host is not
// enough: run from a terminal, or with stderr redirected, the daemon must
// keep writing where the operator is looking. A malformed JOURNAL_STREAM
// counts as false.
func JournalStream() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// DefaultIdentifier is the SYSLOG_IDENTIFIER of journal entries unless
// JournalOptions.Identifier says otherwise; it is what `journalctl -t`
// matches.
const DefaultIdentifier = "fstaidd"

// FieldPrefix starts the journal field name of every slog attribute.
const FieldPrefix = "FSTAID_"

// JournalOptions configure NewJournalHandler.
type JournalOptions struct {
	// HandlerOptions as for slog's handlers. Level defaults to
	// slog.LevelInfo. ReplaceAttr is called for the attributes of records
	// and of WithAttrs, not for the built-in time, level and message,
	// which become journald's own timestamp, PRIORITY and MESSAGE.
	// AddSource adds journald's CODE_FILE, CODE_LINE and CODE_FUNC.
	slog.HandlerOptions
	// Identifier is the SYSLOG_IDENTIFIER; empty means DefaultIdentifier.
	Identifier string
}

// NewJournalHandler returns a slog.Handler that sends each record to
// journald natively (go-systemd's journal.Send, on
// /run/systemd/journal/socket):
//
//   - PRIORITY from the level: error and above 3 (err), warn 4 (warning),
//     info 6, below info 7 (debug);
//   - MESSAGE is the message followed by " key=value" for each attribute,
//     for people reading `journalctl -u fstaidd`; keys inside groups are
//     joined with '.', values quoted when they contain spaces, '=', '"' or
//     control characters;
//   - each attribute is also its own field, for `journalctl FSTAID_CHECK=
//     primary` and for -o json: FieldPrefix, then the group names and key
//     joined with '_', upper-cased, every character outside [A-Z0-9_]
//     replaced by '_', cut to journald's 64 characters ("exit_status" is
//     FSTAID_EXIT_STATUS, "http.status" in group "check" is
//     FSTAID_CHECK_HTTP_STATUS); a later attribute with the same field name
//     replaces an earlier one;
//   - SYSLOG_IDENTIFIER as configured.
//
// If journald cannot be reached, Handle writes the message to stderr,
// prefixed with "<PRIORITY>" as journald's stream protocol reads it, and
// returns the error: a monitor must not lose the log of a failover.
// The handler is safe for concurrent use. o may be nil: the defaults of
// JournalOptions (level info, DefaultIdentifier).
func NewJournalHandler(o *JournalOptions) slog.Handler {
	h := &journalHandler{ident: DefaultIdentifier, send: journal.Send, fallback: os.Stderr}
	if o != nil {
		h.opts = o.HandlerOptions
		if o.Identifier != "" {
			h.ident = o.Identifier
		}
	}
	return h
}

type journalField struct{ name, value string }

type journalHandler struct {
	opts     slog.HandlerOptions
	ident    string
	send     func(message string, p journal.Priority, vars map[string]string) error
	fallback io.Writer

	// Rendered by WithAttrs: the " k=v" text and the fields, in order.
	text   string
	fields []journalField
	// groups are the open WithGroup names.
	groups []string
}

var _ slog.Handler = (*journalHandler)(nil)

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	minLevel := slog.LevelInfo
	if h.opts.Level != nil {
		minLevel = h.opts.Level.Level()
	}
	return l >= minLevel
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	var b strings.Builder
	b.WriteString(h.text)
	fields := slices.Clip(h.fields)
	for _, a := range as {
		fields = h.appendAttr(&b, fields, h.groups, a)
	}
	h2.text, h2.fields = b.String(), fields
	return &h2
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), name)
	return &h2
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.text)
	fields := slices.Clip(h.fields)
	r.Attrs(func(a slog.Attr) bool {
		fields = h.appendAttr(&b, fields, h.groups, a)
		return true
	})
	vars := make(map[string]string, len(fields)+4)
	for _, f := range fields {
		vars[f.name] = f.value
	}
	vars["SYSLOG_IDENTIFIER"] = h.ident
	if h.opts.AddSource && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		vars["CODE_FILE"] = f.File
		vars["CODE_LINE"] = strconv.Itoa(f.Line)
		vars["CODE_FUNC"] = f.Function
	}
	msg, prio := b.String(), priority(r.Level)
	if err := h.send(msg, prio, vars); err != nil {
		fmt.Fprintf(h.fallback, "<%d>%s\n", prio, strings.ReplaceAll(msg, "\n", " "))
		return fmt.Errorf("systemd: journal: %w", err)
	}
	return nil
}

// appendAttr renders a into b (for MESSAGE) and fields (one per leaf
// attribute), flattening groups as slog's own handlers do: an empty
// attribute or an empty group is dropped, a group with an empty key is
// inlined.
func (h *journalHandler) appendAttr(b *strings.Builder, fields []journalField, groups []string, a slog.Attr) []journalField {
	a.Value = a.Value.Resolve()
	if rep := h.opts.ReplaceAttr; rep != nil && a.Value.Kind() != slog.KindGroup {
		a = rep(groups, a)
		a.Value = a.Value.Resolve()
	}
	if a.Equal(slog.Attr{}) {
		return fields
	}
	if a.Value.Kind() == slog.KindGroup {
		as := a.Value.Group()
		if len(as) == 0 {
			return fields
		}
		g := groups
		if a.Key != "" {
			g = append(slices.Clip(groups), a.Key)
		}
		for _, ga := range as {
			fields = h.appendAttr(b, fields, g, ga)
		}
		return fields
	}
	if a.Key == "" {
		// No field name can be made from it.
		return fields
	}
	v := valueString(a.Value)
	b.WriteByte(' ')
	for _, g := range groups {
		b.WriteString(quote(g))
		b.WriteByte('.')
	}
	b.WriteString(quote(a.Key))
	b.WriteByte('=')
	b.WriteString(quote(v))
	return append(fields, journalField{fieldName(groups, a.Key), v})
}

func valueString(v slog.Value) string {
	// Value.String would give time.Time's String form; RFC 3339 is what
	// tools parse.
	if v.Kind() == slog.KindTime {
		return v.Time().Format(time.RFC3339Nano)
	}
	return v.String()
}

// quote quotes s when a reader could not otherwise tell where it ends.
func quote(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == '=' || r == '"' || r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// maxFieldName is journald's limit on a field name; longer names are
// dropped by journald, so they are cut here.
const maxFieldName = 64

// fieldName makes a journald field name from an attribute's group path
// and key: journald accepts only [A-Z0-9_], not starting with '_'; the
// prefix takes care of the start.
func fieldName(groups []string, key string) string {
	var b strings.Builder
	b.WriteString(FieldPrefix)
	for _, part := range append(slices.Clip(groups), key) {
		if b.Len() > len(FieldPrefix) {
			b.WriteByte('_')
		}
		for _, r := range part {
			switch {
			case 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_':
				b.WriteRune(r)
			case 'a' <= r && r <= 'z':
				b.WriteRune(r - 'a' + 'A')
			default:
				b.WriteByte('_')
			}
		}
	}
	s := b.String()
	if len(s) > maxFieldName {
		s = s[:maxFieldName]
	}
	return s
}

// priority maps a slog level to a syslog priority.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}
