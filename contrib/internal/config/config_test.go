package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// One rule for every duration: numbers of seconds and Go duration
// strings, finite, not negative, at most MaxDuration.
func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want time.Duration
		err  string
	}{
		{int64(2), 2 * time.Second, ""},
		{0.25, 250 * time.Millisecond, ""},
		{"1m30s", 90 * time.Second, ""},
		{"24h", MaxDuration, ""},
		{int64(86400), MaxDuration, ""},
		{int64(86401), 0, "must be between 0 and 86400 seconds, got 86401"},
		{"25h", 0, "must be between 0 and 86400 seconds, got 90000"},
		{int64(-1), 0, "must be between 0 and 86400 seconds, got -1"},
		{"-1s", 0, "must be between 0 and 86400 seconds, got -1"},
		{"soon", 0, `must be a number of seconds or a duration such as "1m30s", got "soon"`},
		{true, 0, `must be a number of seconds or a duration such as "1m30s", got a boolean`},
	} {
		got, err := ParseSeconds(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("ParseSeconds(%#v) = %v, %v; want %v, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

type inner struct {
	Timeout time.Duration `toml:"timeout"`
}

type section struct {
	inner
	Name    string        `toml:"name"`
	Count   int32         `toml:"count"`
	IDs     []string      `toml:"ids"`
	Sub     *inner        `toml:"sub"`
	Items   []inner       `toml:"item"`
	Derived time.Duration `toml:"-"`
}

// Decode reads every kind of field, names each problem with the one
// spelling, suggests the closest key, and does not let a validation
// problem with a key that could not be read add noise.
func TestDecodeNamesEveryProblem(t *testing.T) {
	root, err := Parse(`
nmae = "x"
[s]
name = 1
count = 3000000000
ids = ["a", 2]
timout = 3
[s.sub]
timeout = "2s"
[[s.item]]
timeout = 1
[[s.item]]
timeout = -1
Derived = 4
`)
	if err != nil {
		t.Fatal(err)
	}
	var s section
	root.Table("s", true).Decode(&s)
	root.Table("missing", true)
	root.String("name")
	root.Done()
	// A validation that would complain about the unreadable name again.
	v := NewProblems("")
	v.Add("name", "is required")
	v.Add("other", "is wrong")
	root.Problems().Include(TableName("s"), v.Err())
	root.Problems().Include(ElementName("s.item", 0), errors.New("a plain error"))

	if s.Sub == nil || s.Sub.Timeout != 2*time.Second || len(s.Items) != 2 || s.Items[0].Timeout != time.Second {
		t.Errorf("decoded %+v", s)
	}
	err = root.Problems().Err()
	var got []string
	for _, line := range strings.Split(err.Error(), "\n")[1:] {
		got = append(got, strings.TrimPrefix(line, "  * "))
	}
	want := []string{
		"[s] name: must be a string, got an integer",
		"[s] count: 3000000000 is out of range",
		"[s] ids: must be an array of strings, got an integer as ids #2",
		"[[s.item]] #2 timeout: must be between 0 and 86400 seconds, got -1",
		`[[s.item]] #2 Derived: unknown key`,
		`[s] timout: unknown key (did you mean "timeout"?)`,
		"[missing]: section is required",
		`top level nmae: unknown key (did you mean "name"?)`,
		"[s] other: is wrong",
		"[[s.item]] #1: a plain error",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(err.Error(), "10 problems:") {
		t.Errorf("error %q does not count the problems", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"maxattempts", "attempt_interval", "prefix", "primary", "timeout", "log"}
	for in, want := range map[string]string{
		"maxattempt":      "maxattempts",
		"attemptinterval": "attempt_interval",
		"prefx":           "prefix",
		"primery":         "primary",
		"time":            "timeout",
		"tcp":             "",
		"colour":          "",
	} {
		if got := Suggest(in, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
