// Package config is the one configuration pipeline of contrib: fstaidd.toml
// is decoded once (Parse), and every section — fstaidd's [global],
// [handler], the checks and [[user]], contrib/aws's [aws], contrib/etcd's
// [etcd] — reads its keys from a Table view of it, owns its validation,
// and reports each problem with its key into one Problems collector, so
// that every problem of the file is reported at once.
//
// # Key spelling
//
// A problem names where it is, one way everywhere:
//
//	[global] port: ...                   a key of a table
//	[aws.imds] endpoint: ...             a key of a sub-table
//	[[aws.elastic_ip]] #2 allocation_id: ...  a key of the 2nd table of an array (counted from 1)
//	[[aws.route_table]] #1 route_table_ids #2: ...  the 2nd value of an array key
//	[primary]: section is required       the table itself
//	top level primery: unknown key       a key outside every table
//
// An unknown key is reported with the closest known key of its table, by
// edit distance ("did you mean").
//
// # Durations
//
// Every duration is read by one rule (ParseSeconds): a number of seconds,
// fractions allowed (1, 0.25), or a Go duration string ("1m30s", "250ms");
// it must be finite, not negative and at most MaxDuration (24 hours:
// anything longer is a typo for a monitor).
package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-multierror"
)

// MaxDuration bounds every duration of the configuration.
const MaxDuration = 24 * time.Hour

// ParseSeconds reads a duration as TOML holds it: an integer or a float
// of seconds, or a Go duration string. It refuses what is not finite,
// negative, or longer than MaxDuration; the error names the value only.
func ParseSeconds(v any) (time.Duration, error) {
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	case string:
		d, err := time.ParseDuration(n)
		if err != nil {
			return 0, fmt.Errorf(`must be a number of seconds or a duration such as "1m30s", got %q`, n)
		}
		f = d.Seconds()
	default:
		return 0, fmt.Errorf(`must be a number of seconds or a duration such as "1m30s", got %s`, TypeName(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > MaxDuration.Seconds() {
		return 0, fmt.Errorf("must be between 0 and %v seconds, got %v", MaxDuration.Seconds(), f)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// TableName is how a problem names the table at path ("[aws.imds]").
func TableName(path string) string { return "[" + path + "]" }

// ElementName is how a problem names the i-th table (from 0) of the
// array of tables at path ("[[aws.elastic_ip]] #1").
func ElementName(path string, i int) string { return fmt.Sprintf("[[%s]] #%d", path, i+1) }

// ValueName is how a problem names the i-th value (from 0) of the array
// key ("route_table_ids #2").
func ValueName(key string, i int) string { return fmt.Sprintf("%s #%d", key, i+1) }

// Problem is one configuration problem: where (a table's name, empty
// when the problem is not yet placed), its key (empty for the table
// itself) and why.
type Problem struct {
	Where, Key, Reason string
}

func (p *Problem) Error() string {
	where := p.Where
	if p.Key != "" {
		if where != "" {
			where += " "
		}
		where += p.Key
	}
	if where == "" {
		return p.Reason
	}
	return where + ": " + p.Reason
}

// Problems collects the problems of a configuration, or of one part of
// it, to report them all at once. The zero value is ready to use; where
// is prefixed to the problems Add records.
type Problems struct {
	where string
	errs  *multierror.Error
	// unread holds the keys ("where key") whose value could not be read:
	// later problems with them are not recorded, since validating a
	// value that is not there only adds noise.
	unread map[string]bool
}

// NewProblems returns a collector whose problems are in where (a
// TableName or ElementName; empty: placed by whoever includes them).
func NewProblems(where string) *Problems { return &Problems{where: where} }

// Add records a problem with key (empty: the table itself).
func (p *Problems) Add(key, format string, args ...any) { p.At(p.where, key, format, args...) }

// At records a problem with key of the table where names.
func (p *Problems) At(where, key, format string, args ...any) {
	if p.unread[where+" "+key] {
		return
	}
	p.errs = multierror.Append(p.errs, &Problem{Where: where, Key: key, Reason: fmt.Sprintf(format, args...)})
}

// Include records every problem err holds (a Problems.Err, a
// multierror, an errors.Join, or a single error), placing the unplaced
// ones in where: a Validate of a part reports its keys, its whole places
// them.
func (p *Problems) Include(where string, err error) {
	if err == nil {
		return
	}
	switch e := err.(type) {
	case *multierror.Error:
		for _, x := range e.Errors {
			p.Include(where, x)
		}
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			p.Include(where, x)
		}
	case *Problem:
		if e.Where == "" {
			e = &Problem{Where: where, Key: e.Key, Reason: e.Reason}
		}
		if !p.unread[e.Where+" "+e.Key] {
			p.errs = multierror.Append(p.errs, e)
		}
	default:
		if where != "" {
			err = fmt.Errorf("%s: %w", where, err)
		}
		p.errs = multierror.Append(p.errs, err)
	}
}

// Len is the number of problems recorded.
func (p *Problems) Len() int {
	if p.errs == nil {
		return 0
	}
	return len(p.errs.Errors)
}

// Err returns nil without problems; otherwise a *multierror.Error of
// every problem in the order found, shown as the problem alone or as
// "N problems:" and one per line.
func (p *Problems) Err() error {
	if p.Len() == 0 {
		return nil
	}
	p.errs.ErrorFormat = listErrors
	return p.errs
}

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

// Parse decodes a whole file once. A syntax error is returned at once
// (err, naming the line); every other problem goes to the returned
// Table's Problems as its sections read it.
func Parse(data string) (*Table, error) {
	var raw map[string]any
	if _, err := toml.Decode(data, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("TOML syntax, line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("TOML: %w", err)
	}
	return newTable(&Problems{}, "", "top level", raw), nil
}

// Table is one TOML table being read: each key a section reads is
// marked, so that Done can report the rest as unknown, with the closest
// key the section knows.
type Table struct {
	p    *Problems
	path string // dotted, "" at the top level
	name string // as problems name it
	m    map[string]any
	used map[string]bool
	// known is every key the section asked for, for suggestions.
	known []string
}

func newTable(p *Problems, path, name string, m map[string]any) *Table {
	return &Table{p: p, path: path, name: name, m: m, used: map[string]bool{}}
}

// Problems is the collector the whole file's problems go to.
func (t *Table) Problems() *Problems { return t.p }

// Name is the table as problems name it ("[global]", "top level").
func (t *Table) Name() string { return t.name }

// Errorf records a problem with key of this table (empty: the table).
func (t *Table) Errorf(key, format string, args ...any) { t.p.At(t.name, key, format, args...) }

// unreadable records that key's value could not be read, and why.
func (t *Table) unreadable(key, format string, args ...any) {
	t.Errorf(key, format, args...)
	if t.p.unread == nil {
		t.p.unread = map[string]bool{}
	}
	t.p.unread[t.name+" "+key] = true
}

// Keys returns the table's keys, sorted, without reading them: for a
// table whose keys are names the section does not know in advance
// (request headers, say).
func (t *Table) Keys() []string {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Has reports whether key is present, without reading it.
func (t *Table) Has(key string) bool {
	_, ok := t.m[key]
	return ok
}

func (t *Table) take(key string) (any, bool) {
	t.known = append(t.known, key)
	v, ok := t.m[key]
	if ok {
		t.used[key] = true
	}
	return v, ok
}

func (t *Table) child(key string) string {
	if t.path == "" {
		return key
	}
	return t.path + "." + key
}

// Table returns the sub-table key (nil when absent or not a table; a
// problem is recorded when required and absent, or not a table).
func (t *Table) Table(key string, required bool) *Table {
	v, ok := t.take(key)
	path := t.child(key)
	if !ok {
		if required {
			t.p.At(TableName(path), "", "section is required")
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.unreadable(key, "must be a table (%s), got %s", TableName(path), TypeName(v))
		return nil
	}
	return newTable(t.p, path, TableName(path), m)
}

// Tables returns the array of tables key ([[key]]), each named by its
// ElementName; nil when absent.
func (t *Table) Tables(key string) []*Table {
	v, ok := t.take(key)
	if !ok {
		return nil
	}
	path := t.child(key)
	arr, ok := v.([]map[string]any)
	if a, isArr := v.([]any); isArr && len(a) == 0 {
		arr, ok = nil, true // key = []: no table
	}
	if !ok {
		t.unreadable(key, "must be an array of tables ([[%s]]), got %s", path, TypeName(v))
		return nil
	}
	out := make([]*Table, len(arr))
	for i, m := range arr {
		out[i] = newTable(t.p, path, ElementName(path, i), m)
	}
	return out
}

// String reads a string key; ok is false when absent or not a string
// (recorded).
func (t *Table) String(key string) (s string, ok bool) {
	v, present := t.take(key)
	if !present {
		return "", false
	}
	if s, ok = v.(string); !ok {
		t.unreadable(key, "must be a string, got %s", TypeName(v))
	}
	return s, ok
}

// Strings reads an array of strings.
func (t *Table) Strings(key string) ([]string, bool) {
	v, present := t.take(key)
	if !present {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		t.unreadable(key, "must be an array of strings, got %s", TypeName(v))
		return nil, false
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		if out[i], ok = e.(string); !ok {
			t.unreadable(key, "must be an array of strings, got %s as %s", TypeName(e), ValueName(key, i))
			return nil, false
		}
	}
	return out, true
}

// Bool reads a boolean key.
func (t *Table) Bool(key string) (b bool, ok bool) {
	v, present := t.take(key)
	if !present {
		return false, false
	}
	if b, ok = v.(bool); !ok {
		t.unreadable(key, "must be true or false, got %s", TypeName(v))
	}
	return b, ok
}

// Int reads a whole number (a float without a fraction counts).
func (t *Table) Int(key string) (int64, bool) {
	v, present := t.take(key)
	if !present {
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
	t.unreadable(key, "must be a whole number, got %s", TypeName(v))
	return 0, false
}

// Seconds reads a duration by ParseSeconds' rule.
func (t *Table) Seconds(key string) (time.Duration, bool) {
	v, present := t.take(key)
	if !present {
		return 0, false
	}
	d, err := ParseSeconds(v)
	if err != nil {
		t.unreadable(key, "%v", err)
		return 0, false
	}
	return d, true
}

// Done reports every key of the table no one read as unknown, with the
// closest known key when one is close.
func (t *Table) Done() {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		if !t.used[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if hint := Suggest(k, t.known); hint != "" {
			t.Errorf(k, "unknown key (did you mean %q?)", hint)
		} else {
			t.Errorf(k, "unknown key")
		}
	}
}

// Suggest returns the known key closest to k by edit distance (ignoring
// underscores), or "" when none is close: at most a third of the
// longer's letters apart, or one a prefix of the other.
func Suggest(k string, known []string) string {
	best, bestD := "", math.MaxInt
	norm := func(s string) string { return strings.ReplaceAll(s, "_", "") }
	for _, c := range known {
		if c == k {
			continue
		}
		d := distance(norm(k), norm(c))
		close := d <= max(len(k), len(c))/3 || (len(k) >= 3 && (strings.HasPrefix(c, k) || strings.HasPrefix(k, c)))
		if close && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the edit distance of a and b: insertions, deletions,
// substitutions and transpositions of neighbours (optimal string
// alignment), one each.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// TypeName names a decoded TOML value's type for a problem.
func TypeName(v any) string {
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

// Unmarshaler is a field type that reads its own TOML value (as
// toml.Unmarshaler); its error is recorded against the key.
type Unmarshaler = toml.Unmarshaler

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
)

// Decode reads the table into the struct v points to, by the fields'
// toml tags (fields without one, or tagged "-", are not keys; embedded
// structs contribute their fields): strings, booleans, integers,
// time.Duration (ParseSeconds), []string, a field implementing
// Unmarshaler, a pointer to a struct (a sub-table) and a slice of
// structs (an array of tables). Every problem is recorded with its key;
// unknown keys are reported (Done) for every table it reads. A key that
// cannot be read keeps its zero value, and later problems with it (its
// validation) are not recorded.
func (t *Table) Decode(v any) {
	t.decodeStruct(reflect.ValueOf(v).Elem())
	t.Done()
}

func (t *Table) decodeStruct(s reflect.Value) {
	for i := 0; i < s.NumField(); i++ {
		f, sf := s.Field(i), s.Type().Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			t.decodeStruct(f)
			continue
		}
		key := sf.Tag.Get("toml")
		if key == "" || key == "-" || !sf.IsExported() {
			continue
		}
		t.decodeField(key, f)
	}
}

func (t *Table) decodeField(key string, f reflect.Value) {
	ft := f.Type()
	switch {
	case ft == durationType:
		if d, ok := t.Seconds(key); ok {
			f.SetInt(int64(d))
		}
	case reflect.PointerTo(ft).Implements(unmarshalerType):
		if v, ok := t.take(key); ok {
			if err := f.Addr().Interface().(Unmarshaler).UnmarshalTOML(v); err != nil {
				t.unreadable(key, "%v", err)
			}
		}
	case ft.Kind() == reflect.String:
		if s, ok := t.String(key); ok {
			f.SetString(s)
		}
	case ft.Kind() == reflect.Bool:
		if b, ok := t.Bool(key); ok {
			f.SetBool(b)
		}
	case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Int64:
		if n, ok := t.Int(key); ok {
			if f.OverflowInt(n) {
				t.unreadable(key, "%d is out of range", n)
			} else {
				f.SetInt(n)
			}
		}
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
		if ss, ok := t.Strings(key); ok {
			f.Set(reflect.ValueOf(ss))
		}
	case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
		if sub := t.Table(key, false); sub != nil {
			p := reflect.New(ft.Elem())
			sub.Decode(p.Interface())
			f.Set(p)
		}
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
		subs := t.Tables(key)
		if subs == nil {
			return
		}
		out := reflect.MakeSlice(ft, len(subs), len(subs))
		for i, sub := range subs {
			sub.Decode(out.Index(i).Addr().Interface())
		}
		f.Set(out)
	default:
		panic(fmt.Sprintf("config: field %s of type %v cannot be decoded", key, ft))
	}
}
