package pgexec_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

const namedFile = `
queries:
  active_users:
    sql: SELECT email FROM users WHERE active = :active ORDER BY email
    read_only: true
  user_by_email:
    sql: SELECT email, active FROM users WHERE email = :email
    op: one
  deactivate:
    sql: UPDATE users SET active = false WHERE email = :email
`

func TestNamedQueriesAllowlist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	queries, err := named.Parse(strings.NewReader(namedFile))
	require.NoError(t, err)
	pg := testenv.NewPostgres(t)
	pg.Exec(t, "CREATE TABLE users (email text PRIMARY KEY, active bool NOT NULL); INSERT INTO users VALUES ('a@x', true), ('b@x', false)")
	c := connect(t, pg)
	ex, err := pgexec.NewExecutor(c, pgexec.ExecutorConfig{NamedQueries: queries, NamedOnly: true})
	require.NoError(t, err)

	out, err := ex.Execute(ctx, &messages.ExecuteRequest{Query: "active_users", Params: []byte(`{"active":true}`)}, pgjson.Output{})
	require.NoError(t, err)
	require.Contains(t, string(out), `"rows":[{"email":"a@x"}]`)
	out, err = ex.Execute(ctx, &messages.ExecuteRequest{Query: "user_by_email", Params: []byte(`{"email":"b@x"}`)}, pgjson.Output{})
	require.NoError(t, err)
	require.Contains(t, string(out), `"row":{"email":"b@x","active":false}`)
	_, err = ex.Execute(ctx, &messages.ExecuteRequest{Query: "deactivate", Params: []byte(`{"email":"a@x"}`)}, pgjson.Output{})
	require.NoError(t, err)

	for _, tc := range []struct {
		req  messages.ExecuteRequest
		code messages.Code
	}{
		{messages.ExecuteRequest{SQL: "SELECT 1"}, messages.CodeForbidden},
		{messages.ExecuteRequest{Op: "insert", Table: "users", Data: map[string]json.RawMessage{}}, messages.CodeForbidden},
		{messages.ExecuteRequest{Query: "drop_everything"}, messages.CodeNotFound},
		{messages.ExecuteRequest{Query: "active_users", SQL: "DELETE FROM users"}, messages.CodeBadRequest},
		{messages.ExecuteRequest{Query: "active_users", Params: []byte(`{}`)}, messages.CodeBadRequest},
	} {
		_, err := ex.Execute(ctx, &tc.req, pgjson.Output{})
		require.Equal(t, tc.code, pgerr.AsError(err).Code, "%+v: %v", tc.req, err)
	}

	// A named query marked read_only cannot write, whatever it says.
	bad, err := named.Parse(strings.NewReader("queries:\n  sneaky:\n    sql: DELETE FROM users\n    read_only: true\n"))
	require.NoError(t, err)
	ex, err = pgexec.NewExecutor(c, pgexec.ExecutorConfig{NamedQueries: bad})
	require.NoError(t, err)
	_, err = ex.Execute(ctx, &messages.ExecuteRequest{Query: "sneaky"}, pgjson.Output{})
	require.Equal(t, messages.CodeForbidden, pgerr.AsError(err).Code)
	_, err = ex.Execute(ctx, &messages.ExecuteRequest{SQL: "SELECT 1"}, pgjson.Output{})
	require.NoError(t, err, "without NamedOnly, ad-hoc SQL still runs")
}

func TestParseNamedQueriesRefusesBadFiles(t *testing.T) {
	for _, bad := range []string{
		"queries:\n  two:\n    sql: SELECT 1; SELECT 2\n",
		"queries:\n  empty:\n    sql: ''\n",
		"queries:\n  'bad name':\n    sql: SELECT 1\n",
		"queries:\n  q:\n    sql: SELECT 1\n    op: script\n",
		"queries:\n  q:\n    sql: SELECT 1\n    typo: x\n",
	} {
		_, err := named.Parse(strings.NewReader(bad))
		require.Error(t, err, bad)
	}
}
