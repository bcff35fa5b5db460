// Package stmtcache is the executor's per-connection cache of statement
// descriptions (parameter and result types), keyed by SQL text, so that a
// repeated statement is described once and then sent in one round trip. A
// cache is used by one goroutine at a time: the holder of the connection.
//
// Statements are sent unnamed (Parse, Bind, Describe, Execute each time):
// the server keeps no prepared statement of the worker's, so the reset can
// be DISCARD ALL and no request can drop or replace one of them. The server
// parses and plans each statement again; a parse is a few microseconds
// against the 10 to 20 of the reset a named cache would need (docs/
// benchmarks.md). When a table changes under a cached description, the
// result's columns no longer match it: the executor does not read the
// result, and describes and sends the statement again.
//
// Why not pgx's own cache: it lives in pgx's internal/stmtcache (not
// importable) and serves pgx's Query API, while the executor works on
// pgconn and needs the server's description of each statement before
// binding (JSON parameters are encoded by the types the server infers).
package stmtcache

import (
	"container/list"

	"github.com/jackc/pgx/v5/pgconn"
)

// Size bounds the statement descriptions kept per connection.
const Size = 256

// LRU holds the most recently used descriptions of one connection.
type LRU struct {
	size int
	ll   *list.List
	m    map[string]*list.Element
}

// New returns an empty cache of at most size descriptions.
func New(size int) *LRU {
	return &LRU{size: size, ll: list.New(), m: make(map[string]*list.Element)}
}

// Get returns the description of sql, or nil.
func (c *LRU) Get(sql string) *pgconn.StatementDescription {
	if e, ok := c.m[sql]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*pgconn.StatementDescription)
	}
	return nil
}

// Put stores sd under its SQL, evicting the least recently used past Size.
func (c *LRU) Put(sd *pgconn.StatementDescription) {
	if e, ok := c.m[sd.SQL]; ok {
		e.Value = sd
		c.ll.MoveToFront(e)
		return
	}
	c.m[sd.SQL] = c.ll.PushFront(sd)
	if c.ll.Len() > c.size {
		c.remove(c.ll.Back())
	}
}

// Remove forgets the description of sql.
func (c *LRU) Remove(sql string) {
	if e, ok := c.m[sql]; ok {
		c.remove(e)
	}
}

// Len returns the number of descriptions held.
func (c *LRU) Len() int { return c.ll.Len() }

func (c *LRU) remove(e *list.Element) {
	sd := e.Value.(*pgconn.StatementDescription)
	c.ll.Remove(e)
	delete(c.m, sd.SQL)
}
