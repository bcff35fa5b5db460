package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// computedDefaults are the variables whose default is not a value but is
// worked out at start; docs/operations.md describes it instead.
var computedDefaults = map[string]string{
	"NATS_JS_INBOX_PREFIX":    "NATS_INBOX_PREFIX",
	"NATS_EMBEDDED_STORE_DIR": "$TMPDIR/dbworker-nats",
	"WORKER_ID":               "hostname-pid",
}

var (
	docVariableRE = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	// `MAINT_CONCURRENCY` (1; 0 takes no jobs) in the maintenance settings.
	docSettingRE = regexp.MustCompile("`([A-Z][A-Z0-9_]+)` \\(([^);]*)")
)

// docDefaults reads the defaults docs/operations.md gives: the table of
// "## Configuration", the "Maintenance settings" list and the publisher's
// SCHEDULES_FILE. It fails on a variable documented twice.
func docDefaults(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	doc := string(raw)
	out := map[string]string{}
	add := func(name, def string) {
		_, dup := out[name]
		require.False(t, dup, "%s is documented twice", name)
		out[name] = strings.TrimSpace(strings.ReplaceAll(def, "`", ""))
	}

	_, table, ok := strings.Cut(doc, "| variable | default | meaning |\n|---|---|---|\n")
	require.True(t, ok, "the configuration table")
	table, _, _ = strings.Cut(table, "\n\n")
	for _, row := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(row, "|"), "|") // no cell of this table holds a '|'
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		require.GreaterOrEqual(t, len(cells), 2, row)
		var names []string
		for _, m := range docVariableRE.FindAllStringSubmatch(cells[0], -1) {
			names = append(names, m[1])
		}
		require.NotEmpty(t, names, row)
		defs := strings.Split(cells[1], ", ")
		if cells[1] == "" {
			defs = make([]string, len(names))
		}
		require.Len(t, defs, len(names), "one default per variable: %s", row)
		for i, name := range names {
			def, _, _ := strings.Cut(defs[i], ": ") // "0: the NATS server's max payload..."
			add(name, def)
		}
	}

	_, maint, ok := strings.Cut(doc, "- Maintenance settings: ")
	require.True(t, ok, "the maintenance settings")
	maint, _, _ = strings.Cut(maint, "\n\n")
	for _, m := range docSettingRE.FindAllStringSubmatch(maint, -1) {
		add(m[1], m[2])
	}

	m := regexp.MustCompile("`SCHEDULES_FILE`\\s+\\(`([^`]+)`").FindStringSubmatch(doc)
	require.NotNil(t, m, "SCHEDULES_FILE's default")
	add("SCHEDULES_FILE", m[1])
	return out
}

// TestDocumentedDefaults: docs/operations.md gives every variable, with the
// default the program uses, and no variable that does not exist.
func TestDocumentedDefaults(t *testing.T) {
	doc := docDefaults(t)
	c, p := Defaults(), PublisherDefaults()
	known := map[string]bool{}
	for _, v := range append(describe(reflect.ValueOf(&c).Elem()), describe(reflect.ValueOf(&p).Elem())...) {
		if known[v.name] {
			continue
		}
		known[v.name] = true
		got, ok := doc[v.name]
		if !ok {
			t.Errorf("%s is not in docs/operations.md", v.name)
			continue
		}
		if !sameDefault(t, v, got) {
			t.Errorf("%s: docs/operations.md says %q, the default is %q", v.name, got, v.def)
		}
	}
	for name := range doc {
		if !known[name] {
			t.Errorf("docs/operations.md documents %s, which is no variable", name)
		}
	}
}

// sameDefault reports whether the default doc gives is v's: durations as
// durations ("3600s" is 1h), "none" for no default, and the description of a
// computed one.
func sameDefault(t *testing.T, v variable, doc string) bool {
	if want, ok := computedDefaults[v.name]; ok {
		return v.def == "" && doc == want
	}
	if v.def == "" {
		return doc == "" || doc == "none"
	}
	var want, got Seconds
	if want.Decode(v.def) == nil && got.Decode(doc) == nil && !strings.Contains(v.def, ",") {
		return want == got
	}
	return v.def == doc
}

// TestDefaultsSurviveAnEmptyEnvironment: with nothing set, Load's values are
// Defaults', the constants of the packages; the env layer adds none of its
// own.
func TestDefaultsSurviveAnEmptyEnvironment(t *testing.T) {
	cleanEnv(t)
	c, err := Load()
	require.NoError(t, err)
	want := Defaults()
	want.WorkerID = c.WorkerID // worked out at start
	require.Equal(t, want, *c)
}
