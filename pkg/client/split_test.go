package client

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSplitRows: rows are split where encoding/json splits them, whatever
// their strings hold.
func TestSplitRows(t *testing.T) {
	for _, rows := range []string{
		`[]`, ` [ ] `, `[{"a":1}]`, `[{"a":1},{"a":2}]`, `[[1,2],[3,[4,5]],[]]`,
		`[{"s":"a,b]}[{"},{"s":"\"quoted\", \\"},{"s":"\\"}]`,
		`[ {"a" : [1, {"b": "}]"}] } ,  {"c":null} ]`,
		`[1, "two", null, true, 3.5e+10]`,
		"[{\"u\":\"\u00e9\u2028,\"}]",
	} {
		var want []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(rows), &want), rows)
		got, err := splitRows(json.RawMessage(rows))
		require.NoError(t, err, rows)
		require.Len(t, got, len(want), rows)
		for i := range want {
			require.Equal(t, string(bytes.TrimSpace(want[i])), string(got[i]), rows)
		}
	}
	got, err := splitRows(json.RawMessage(`null`))
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = splitRows(json.RawMessage(`{"a":1}`))
	require.Error(t, err)
}
