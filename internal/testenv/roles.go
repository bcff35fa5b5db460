package testenv

import (
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Roles are logins made by the shipped deploy/postgres/roles.sql for a test's
// schema: URL of the read-write role and of the read-only one, each with the
// schema first on its search_path.
type Roles struct {
	ReadWriteURL string
	ReadOnlyURL  string
}

// ApplyRoles runs deploy/postgres/roles.sql for the test's schema, as psql -v
// schema=<schema> would, and returns URLs that log in as its roles (the local
// server trusts them; a real deployment gives them passwords).
func (p *Postgres) ApplyRoles(t testing.TB) Roles {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "postgres", "roles.sql"))
	if err != nil {
		t.Fatalf("read roles.sql: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, `\`) { // psql meta-commands
			lines = append(lines, l)
		}
	}
	sql := strings.ReplaceAll(strings.Join(lines, "\n"), `:"schema"`, pgx.Identifier{p.Schema}.Sanitize())

	// Roles are shared by the whole server; tests apply the file one at a time.
	if err := admin(t, "BEGIN; SELECT pg_advisory_xact_lock(4243);\n"+sql+";\nCOMMIT"); err != nil {
		t.Fatalf("apply roles.sql: %v", err)
	}
	as := func(user string) string {
		u, err := url.Parse(p.URL)
		if err != nil {
			t.Fatalf("parse %s: %v", p.URL, err)
		}
		u.User = url.User(user)
		return u.String()
	}
	return Roles{ReadWriteURL: as("dbworker_rw"), ReadOnlyURL: as("dbworker_ro")}
}
