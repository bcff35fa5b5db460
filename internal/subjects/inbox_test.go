package subjects

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateInboxPrefix(t *testing.T) {
	for _, ok := range []string{"_INBOX", "_INBOX_orders", "_I.orders", "inbox-1"} {
		require.NoError(t, ValidateInboxPrefix(ok), ok)
	}
	for _, bad := range []string{"", "_INBOX.", ".x", "a..b", "_INBOX.*", "_INBOX.>", "a b", "$JS", "$SYS.x"} {
		require.Error(t, ValidateInboxPrefix(bad), bad)
	}
}

func TestOwns(t *testing.T) {
	s, err := New("prod.")
	require.NoError(t, err)
	for _, own := range []string{"db.execute", "prod.db.execute", "prod.db.vacuum.jobs", "db.vacuum.results.public.items",
		"state.kv", "prod.cache.embedding", "db.vacuum.progress.r1"} {
		require.True(t, s.Owns(own), own)
	}
	for _, not := range []string{"_INBOX.x", "_INBOX_db.x", "prod.other", "dbx.y", "$JS.API.INFO"} {
		require.False(t, s.Owns(not), not)
	}
}

func TestValidateReplyPrefix(t *testing.T) {
	s, err := New("prod.")
	require.NoError(t, err)
	for _, ok := range []string{"_INBOX.", "_INBOX_", "_INBOX_orders.", "_", "replies."} {
		require.NoError(t, s.ValidateReplyPrefix(ok), ok)
	}
	for _, bad := range []string{"", "$", "$JS.", ".", "d", "db.", "db.vacuum.", "state.", "cache.x", "p", "prod.", "prod.db.",
		"_INBOX.*", "_INBOX.>", "a b"} {
		require.Error(t, s.ValidateReplyPrefix(bad), bad)
	}
}
