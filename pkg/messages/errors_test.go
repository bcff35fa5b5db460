package messages_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// TestErrorCause: an Error keeps the Go error it was made from for the log
// and errors.Is/As, and sends nothing of it.
func TestErrorCause(t *testing.T) {
	cause := fmt.Errorf("kv get %q: %w", "k", context.DeadlineExceeded)
	e := messages.Wrap(messages.CodeTimeout, cause, "state backend did not answer in time")
	require.Equal(t, cause, errors.Unwrap(e))
	require.ErrorIs(t, e, context.DeadlineExceeded)
	require.Equal(t, "TIMEOUT (408): state backend did not answer in time", e.Error(), "the cause is not in the message")

	body, err := json.Marshal(messages.ErrorBody{Error: e})
	require.NoError(t, err)
	require.JSONEq(t, `{"error":{"code":"TIMEOUT","status":408,"message":"state backend did not answer in time"}}`, string(body))

	var back messages.ErrorBody
	require.NoError(t, json.Unmarshal(body, &back))
	require.Nil(t, errors.Unwrap(back.Error), "an answer carries no cause")

	bad := messages.BadRequest("key", "key is required")
	require.Nil(t, errors.Unwrap(bad))
	require.Same(t, bad, bad.WithCause(cause))
	require.ErrorIs(t, bad, context.DeadlineExceeded)
}
