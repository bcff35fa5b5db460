package stmtcache_test

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/stmtcache"
)

func TestLRU(t *testing.T) {
	c := stmtcache.New(2)
	a, b, d := &pgconn.StatementDescription{SQL: "a"}, &pgconn.StatementDescription{SQL: "b"}, &pgconn.StatementDescription{SQL: "d"}
	c.Put(a)
	c.Put(b)
	require.Same(t, a, c.Get("a"), "a is now the most recent")
	c.Put(d)
	require.Nil(t, c.Get("b"), "the least recently used is evicted")
	require.Same(t, a, c.Get("a"))
	require.Same(t, d, c.Get("d"))
	a2 := &pgconn.StatementDescription{SQL: "a"}
	c.Put(a2)
	require.Same(t, a2, c.Get("a"), "put replaces")
	require.Equal(t, 2, c.Len())
	c.Remove("a")
	c.Remove("nope")
	require.Nil(t, c.Get("a"))
	require.Equal(t, 1, c.Len())
}

func TestLRUBounded(t *testing.T) {
	c := stmtcache.New(stmtcache.Size)
	for i := 0; i < 3*stmtcache.Size; i++ {
		c.Put(&pgconn.StatementDescription{SQL: strconv.Itoa(i)})
	}
	require.Equal(t, stmtcache.Size, c.Len())
}
