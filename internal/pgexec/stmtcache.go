package pgexec

import (
	"container/list"

	"github.com/jackc/pgx/v5/pgconn"
)

// stmtCacheSize bounds the statement descriptions kept per connection.
const stmtCacheSize = 256

// stmtCache is a small LRU of statement descriptions (parameter and result
// types) of one connection, keyed by SQL text, so a repeated statement is
// described once and then sent in one round trip. It is used by one
// goroutine at a time: the holder of the connection.
//
// Statements are sent unnamed (Parse, Bind, Describe, Execute each time):
// the server keeps no prepared statement of the worker's, so the reset can
// be DISCARD ALL and no request can drop or replace one of them. The server
// parses and plans each statement again; a parse is a few microseconds
// against the 10 to 20 of the reset a named cache would need (docs/
// benchmarks.md). When a table changes under a cached description, the
// result's columns no longer match it: the result is not read, and the
// statement is described and sent again (errStale).
//
// Why not pgx's own cache: it lives in pgx's internal/stmtcache (not
// importable) and serves pgx's Query API, while the executor works on
// pgconn and needs the server's description of each statement before
// binding (JSON parameters are encoded by the types the server infers).
type stmtCache struct {
	ll *list.List
	m  map[string]*list.Element
}

func newStmtCache() *stmtCache {
	return &stmtCache{ll: list.New(), m: make(map[string]*list.Element)}
}

func (c *stmtCache) get(sql string) *pgconn.StatementDescription {
	if e, ok := c.m[sql]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*pgconn.StatementDescription)
	}
	return nil
}

func (c *stmtCache) put(sd *pgconn.StatementDescription) {
	if e, ok := c.m[sd.SQL]; ok {
		e.Value = sd
		c.ll.MoveToFront(e)
		return
	}
	c.m[sd.SQL] = c.ll.PushFront(sd)
	if c.ll.Len() > stmtCacheSize {
		c.removeElement(c.ll.Back())
	}
}

func (c *stmtCache) remove(sql string) {
	if e, ok := c.m[sql]; ok {
		c.removeElement(e)
	}
}

func (c *stmtCache) removeElement(e *list.Element) {
	sd := e.Value.(*pgconn.StatementDescription)
	c.ll.Remove(e)
	delete(c.m, sd.SQL)
}

// stmtCacheFor returns the cache of a connection, creating it on first use.
func (c *Client) stmtCacheFor(pc *pgconn.PgConn) *stmtCache {
	c.stmtMu.Lock()
	defer c.stmtMu.Unlock()
	sc, ok := c.stmts[pc]
	if !ok {
		sc = newStmtCache()
		c.stmts[pc] = sc
	}
	return sc
}
