package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestSafeNumbersFromEnv: the binary started with DB_SAFE_NUMBERS=true
// answers a plain NATS caller (as nats.js sends it, no safe_numbers) with
// strings, on db.execute and inside a db.tx transaction; a request's
// "safe_numbers":false gets numbers.
func TestSafeNumbersFromEnv(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ns := testenv.NewNATS(t)
	nc := testenv.Connect(t, ns)
	startWorker(t, nc, "NATS_URL="+ns.ClientURL(), "POSTGRES_URL="+pg.URL, "WORKER_ID=safe-"+pg.Schema, "DB_SAFE_NUMBERS=true")
	ask := func(subject, body string) map[string]json.RawMessage {
		t.Helper()
		m, err := nc.Request(subject, []byte(body), 5*time.Second)
		require.NoError(t, err)
		require.Empty(t, m.Header.Get("Nats-Service-Error-Code"), string(m.Data))
		var out map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(m.Data, &out), string(m.Data))
		return out
	}
	const q = `"op":"one","sql":"SELECT 9223372036854775807::int8 AS id, 1.10::numeric AS n, 5::int8 AS small"`
	require.Equal(t, `{"id":"9223372036854775807","n":"1.10","small":5}`, string(ask("db.execute", `{`+q+`}`)["row"]))
	require.Equal(t, `{"id":9223372036854775807,"n":1.10,"small":5}`, string(ask("db.execute", `{`+q+`,"safe_numbers":false}`)["row"]))

	var subject string
	require.NoError(t, json.Unmarshal(ask("db.tx", `{"op":"begin"}`)["subject"], &subject))
	require.Equal(t, `{"id":"9223372036854775807","n":"1.10","small":5}`, string(ask(subject, `{`+q+`}`)["row"]))
	require.Equal(t, `{"id":9223372036854775807,"n":1.10,"small":5}`, string(ask(subject, `{`+q+`,"safe_numbers":false}`)["row"]))
	require.Equal(t, `true`, string(ask(subject, `{"op":"rollback"}`)["rolled_back"]))
}
