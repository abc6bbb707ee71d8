package main

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/fstaid/fstaid"
)

// The shipped monitoring files (issue 15): Prometheus alert rules with
// their promtool tests, and a Grafana dashboard.
const (
	rulesFile     = "../prometheus/fstaid.rules.yml"
	rulesTestFile = "../prometheus/fstaid.rules.test.yml"
	dashboardFile = "../grafana/fstaid.json"
)

// upcomingMetrics are metrics that issue 15 adds to /metrics in another
// change, and that the rules and the dashboard already use. Each leaves
// this list when fstaidd exports it: the test fails until it does, so
// that a name checked here is checked against the daemon from then on.
var upcomingMetrics = map[string]bool{}

// prometheusMetrics are made by Prometheus for every target, not by
// fstaidd.
var prometheusMetrics = map[string]bool{"up": true}

// TestMonitoringUsesRealMetrics checks that every metric the alert rules,
// their tests and the dashboard name is one a real fstaidd serves on
// /metrics (armed, and during a failover, when the failover counters
// appear), or an upcoming one: a misspelt or renamed metric makes an
// alert that never fires and a panel that stays empty.
func TestMonitoringUsesRealMetrics(t *testing.T) {
	served := servedMetrics(t)
	used := map[string][]string{} // metric → where
	use := func(where, expr string) {
		for _, name := range promqlMetrics(expr) {
			used[name] = append(used[name], where)
		}
	}
	for _, e := range ruleExprs(t) {
		use(rulesFile, e)
	}
	for _, s := range testSeries(t) {
		use(rulesTestFile+" input series", s)
	}
	for where, e := range dashboardExprs(t) {
		use(dashboardFile+" "+where, e)
	}
	for _, must := range []string{"fstaid_state", "fstaid_failovers_total", "fstaid_check_duration_seconds_bucket", "up"} {
		if used[must] == nil {
			t.Errorf("no expression uses %s: is the parser reading the files? used: %v", must, slices.Sorted(maps.Keys(used)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		if !served[name] && !upcomingMetrics[name] && !prometheusMetrics[name] {
			t.Errorf("%s is not a metric fstaidd serves (used in %s)", name, strings.Join(slices.Compact(used[name]), ", "))
		}
	}
	for name := range upcomingMetrics {
		if served[name] {
			t.Errorf("fstaidd now serves %s: remove it from upcomingMetrics", name)
		}
	}
}

// servedMetrics runs a daemon and returns the names it serves on
// /metrics: scraped once armed and once while a failover's handlers have
// returned (the failover counters exist from then on), before it exits.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	e := newEnv(t, 0, "[self]\ncommand = \"true\"\ntimeout = 2\n"+users)
	finished, release := make(chan struct{}), make(chan struct{})
	hold := func(n fstaid.Notice) {
		if n.Kind == fstaid.NoticeFailoverFinished {
			close(finished)
			<-release // the metrics observer has counted it already
		}
	}
	r := e.start(fstaid.WithObserver(hold))
	r.waitState(t, fstaid.StateArmed)
	// The readiness metrics appear once the first readiness run finished.
	r.waitReadiness(t, readinessReady, time.Time{})
	names := map[string]bool{}
	scrape := func() {
		t.Helper()
		resp, body, err := request(context.Background(), "GET", r.url+"/metrics", "ops", "pw")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %v %v", resp, err)
		}
		for name := range exposedNames(string(body)) {
			names[name] = true
		}
	}
	scrape()
	e.touch("dead")
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("no failover within 20s of the target's death")
	}
	scrape()
	close(release)
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("daemon exit %d, want %d", code, exitFailedOver)
	}
	return names
}

// exposedNames returns the sample names of a Prometheus text exposition:
// those of every sample, and for each histogram or summary family the
// _bucket, _sum and _count series.
func exposedNames(text string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			switch f[3] {
			case "histogram":
				names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			case "summary":
				names[f[2]], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// ruleExprs returns every expr of the rules file: a plain or quoted
// scalar on the line, or a block scalar (>-, |) on the lines below it.
func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var exprs []string
	for i := 0; i < len(lines); i++ {
		key, rest, ok := strings.Cut(lines[i], "expr:")
		if !ok || strings.TrimSpace(key) != "" {
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, ">") || strings.HasPrefix(rest, "|") {
			indent := len(key)
			var block []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
				i++
				block = append(block, strings.TrimSpace(lines[i]))
			}
			rest = strings.Join(block, " ")
		} else if len(rest) > 1 && (rest[0] == '\'' || rest[0] == '"') {
			rest = rest[1 : len(rest)-1]
		}
		if rest == "" {
			t.Fatalf("%s:%d: an expr this test cannot read", rulesFile, i+1)
		}
		exprs = append(exprs, rest)
	}
	if len(exprs) != strings.Count(string(b), "- alert: ") {
		t.Fatalf("%s: %d exprs read for %d alerts", rulesFile, len(exprs), strings.Count(string(b), "- alert: "))
	}
	return exprs
}

// testSeries returns the input series of the promtool tests.
func testSeries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- series: '([^']*)'`).FindAllStringSubmatch(string(b), -1) {
		series = append(series, m[1])
	}
	if len(series) == 0 {
		t.Fatalf("%s: no input series", rulesTestFile)
	}
	return series
}

// dashboardExprs returns the PromQL of the dashboard (panel title →
// expr), after checking that it is a dashboard Grafana imports: a title,
// a uid, a schemaVersion, panels of a type with a position, and a query
// on every panel that shows data.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	}
	type panel struct {
		ID      int                       `json:"id"`
		Type    string                    `json:"type"`
		Title   string                    `json:"title"`
		GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []target                  `json:"targets"`
		Panels  []panel                   `json:"panels"`
	}
	var d struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q uid %q schemaVersion %d, %d panels: want all set, schemaVersion 30 or later (Grafana 8+)", dashboardFile, d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	exprs := map[string]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "" || p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || ids[p.ID] {
				t.Errorf("%s: panel %d %q: type %q, gridPos %v: want a type, a title, a size and a unique id", dashboardFile, p.ID, p.Title, p.Type, p.GridPos)
			}
			ids[p.ID] = true
			if p.Type != "row" && p.Type != "text" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q query %s has no expr", dashboardFile, p.Title, tg.RefID)
				}
				exprs["panel "+p.Title+" "+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]\w*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil || q.Query == "" {
			json.Unmarshal(v.Query, &q.Query)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q, want label_values(METRIC, label)", dashboardFile, v.Name, q.Query)
			continue
		}
		exprs["variable "+v.Name] = m[1]
	}
	return exprs
}

// promqlKeywords are the words of PromQL that are not metric names when
// not followed by "(" (functions and aggregations always are).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "offset": true, "bool": true,
	"inf": true, "nan": true, "atan2": true,
}

// promqlAggregations may take their by/without clause before their
// operand.
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// promqlMetrics returns the metric names in a PromQL expression: the
// identifiers outside label matchers, ranges, strings and label lists that
// are not functions, keywords, numbers, durations or Grafana variables.
func promqlMetrics(expr string) []string {
	var names []string
	rs := []rune(expr)
	skipTo := func(i int, close rune) int {
		for i < len(rs) && rs[i] != close {
			if rs[i] == '"' || rs[i] == '\'' || rs[i] == '`' {
				q := rs[i]
				for i++; i < len(rs) && rs[i] != q; i++ {
					if rs[i] == '\\' {
						i++
					}
				}
			}
			i++
		}
		return i
	}
	isIdent := func(r rune, first bool) bool {
		return r == '_' || r == ':' || unicode.IsLetter(r) || (!first && unicode.IsDigit(r))
	}
	labelList := false // the next "(" opens a label list (by, without, on, ...)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '{':
			i = skipTo(i+1, '}')
		case r == '[':
			i = skipTo(i+1, ']')
		case r == '"' || r == '\'' || r == '`':
			q := r
			for i++; i < len(rs) && rs[i] != q; i++ {
				if rs[i] == '\\' {
					i++
				}
			}
		case r == '(' && labelList:
			i = skipTo(i+1, ')')
			labelList = false
		case r == '$':
			// A Grafana variable: $name or ${name}.
			if i+1 < len(rs) && rs[i+1] == '{' {
				i = skipTo(i+1, '}')
				continue
			}
			for i+1 < len(rs) && isIdent(rs[i+1], false) {
				i++
			}
		case unicode.IsDigit(r) || r == '.':
			// A number or a duration (5m, 1e3, 0.9).
			for i+1 < len(rs) && (isIdent(rs[i+1], false) || rs[i+1] == '.') {
				i++
			}
		case isIdent(r, true):
			j := i
			for j+1 < len(rs) && isIdent(rs[j+1], false) {
				j++
			}
			word := string(rs[i : j+1])
			i = j
			k := j + 1
			for k < len(rs) && unicode.IsSpace(rs[k]) {
				k++
			}
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				labelList = true
			case promqlKeywords[strings.ToLower(word)]:
			case k < len(rs) && rs[k] == '(':
				// A function or an aggregation.
			case promqlAggregations[word] && (strings.HasPrefix(string(rs[k:]), "by") || strings.HasPrefix(string(rs[k:]), "without")):
				// sum by (...) (...)
			default:
				names = append(names, word)
			}
		}
	}
	return names
}

func TestPromqlMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`up{job="fstaid"} == 0`: {"up"},
		`histogram_quantile(0.9, sum by (job, instance, check, le) (rate(fstaid_check_duration_seconds_bucket{job="$job", instance=~"$instance"}[$__rate_interval]))) > 2.5`: {"fstaid_check_duration_seconds_bucket"},
		`fstaid_failovers_total{job="fstaid"} > 0 unless fstaid_failovers_total{job="fstaid"} offset 1h`:                                                                     {"fstaid_failovers_total", "fstaid_failovers_total"},
		`time() - fstaid_last_healthy_round_timestamp_seconds{a="}"}`:                                                                                                        {"fstaid_last_healthy_round_timestamp_seconds"},
		`increase(x[$__range]) or on(instance) group_left(version) y * 1e3`:                                                                                                  {"x", "y"},
		`max without (state) (s) + count by(x)(y)`:                                                                                                                           {"s", "y"},
		`changes(process_start_time_seconds[30m]) > 2 and bool ${datasource}`:                                                                                                {"process_start_time_seconds"},
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promqlMetrics(%q) = %q, want %q", expr, got, want)
		}
	}
}
