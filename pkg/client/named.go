package client

import (
	"context"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Named runs the named query name, as the workers' DB_NAMED_QUERIES file
// defines it, with args (nil when it takes none). Its answer is a Query's,
// or a QueryRow's (in Row) for a query of op "one": CollectRows and
// CollectOneRow decode either. An unknown name is an *Error with code
// NOT_FOUND. With DB_ALLOW_ADHOC=false, named queries are the only SQL a
// worker runs.
func (c *Client) Named(ctx context.Context, name string, args Params, opts ...QueryOption) (*Result, error) {
	raw, err := encodeParams(args)
	if err != nil {
		return nil, err
	}
	return c.Execute(ctx, &messages.ExecuteRequest{Query: name, Params: raw}, opts...)
}
