package messages_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestDecodeStrict(t *testing.T) {
	type body struct {
		Table  string         `json:"table"`
		Limit  int            `json:"limit"`
		Params map[string]any `json:"params"`
	}
	var v body
	require.NoError(t, messages.DecodeStrict([]byte(` {"table":"t","limit":3,"params":{"n":9007199254740993}} `+"\n"), &v))
	require.Equal(t, "t", v.Table)
	require.Equal(t, json.Number("9007199254740993"), v.Params["n"], "numbers past 2^53 keep their digits")

	for _, c := range []struct {
		name, data, message, param string
	}{
		{"invalid UTF-8", "{\"table\":\"\xff\"}", "the request is not valid UTF-8", ""},
		{"empty", ``, "malformed JSON: unexpected end of input", ""},
		{"cut short", `{"table":`, "malformed JSON: unexpected end of input", ""},
		{"syntax", `{"table" "t"}`, "malformed JSON at byte 10: invalid character '\"' after object key", ""},
		{"unknown field", `{"table":"t","bogus":1}`, `unknown field "bogus"`, "bogus"},
		{"wrong type", `{"limit":"3"}`, `field "limit": expected int, got JSON string`, "limit"},
		{"trailing object", `{"table":"t"} {}`, "malformed JSON: unexpected data after the request object", ""},
		{"trailing garbage", `{"table":"t"}x`, "malformed JSON: unexpected data after the request object", ""},
		{"two closing braces", `{"table":"t"}}`, "malformed JSON: unexpected data after the request object", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := messages.DecodeStrict([]byte(c.data), &body{})
			var me *messages.Error
			require.True(t, errors.As(err, &me), "%v", err)
			require.Equal(t, messages.CodeBadRequest, me.Code)
			require.Equal(t, 400, me.Status)
			require.Equal(t, c.message, me.Message)
			require.Equal(t, c.param, me.Param)
		})
	}
}
