package pgexec

import (
	"container/list"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// stmtCacheSize bounds the statement descriptions kept per connection.
const stmtCacheSize = 256

// stmtCache is a small LRU of the named prepared statements of one
// connection, so a repeated statement is parsed, described and planned once.
// It is used by one goroutine at a time: the holder of the connection.
//
// Why not pgx's own cache: it lives in pgx's internal/stmtcache (not
// importable) and serves pgx's Query API, while the executor works on
// pgconn, needs the server's description of each statement before binding
// (JSON parameters are encoded by the types the server infers), and must
// know exactly which statements are its own: the reset counts them to catch
// a request that dropped or replaced one (session.go).
//
// Named statements are also what makes the cache safe: when a table changes
// under a statement so its result columns differ, the server refuses to run it
// ("cached plan must not change result type", 0A000) before doing anything,
// and the statement is prepared again.
type stmtCache struct {
	ll      *list.List
	m       map[string]*list.Element
	seq     uint64
	evicted []string // names to DEALLOCATE before the next PREPARE
	house   bool     // the worker's transaction statements are prepared (session.go)
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

// ownStatements is how many of the worker's statements the connection holds:
// the house statements, the cached ones and the evicted ones not yet
// deallocated.
func (c *stmtCache) ownStatements() int {
	n := c.ll.Len() + len(c.evicted)
	if c.house {
		n += len(houseStatements)
	}
	return n
}

// nextName returns a statement name unique on the connection.
func (c *stmtCache) nextName() string {
	c.seq++
	return "dbw_" + strconv.FormatUint(c.seq, 10)
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
	c.evicted = append(c.evicted, sd.Name)
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
