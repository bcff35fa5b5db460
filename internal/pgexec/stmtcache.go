package pgexec

import (
	"container/list"

	"github.com/jackc/pgx/v5/pgconn"
)

// stmtCacheSize bounds the statement descriptions kept per connection.
const stmtCacheSize = 256

// stmtCache is a small LRU of statement descriptions (parameter and result
// types) for one connection, so a repeated statement is described once. It is
// used by one goroutine at a time: the holder of the connection.
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
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*pgconn.StatementDescription).SQL)
	}
}

func (c *stmtCache) remove(sql string) {
	if e, ok := c.m[sql]; ok {
		c.ll.Remove(e)
		delete(c.m, sql)
	}
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
