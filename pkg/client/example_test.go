package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/client"
)

func Example() {
	ctx := context.Background()
	c, err := client.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}

	res, err := c.Query(ctx, "SELECT :n::int8 * 2 AS doubled", client.NamedArgs{"n": 21})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(res.Rows))
	// Output: [{"doubled":42}]
}

func ExampleNew() {
	// A bad option fails New, rather than every call after it.
	_, err := client.New(nc, client.WithTimeout(0))
	fmt.Println(err)
	// Output: client: WithTimeout: must be positive, got 0s
}

func ExampleCollectRows() {
	ctx := context.Background()
	c, _ := client.New(nc)

	type point struct {
		X int `json:"x"`
		Y int `json:"y"`
	}
	points, err := client.CollectRows[point](c.Query(ctx, "SELECT i AS x, i * i AS y FROM generate_series(1, $1) i", client.Args{3}))
	fmt.Println(points, err)
	// A lone column decodes into plain values.
	squares, err := client.CollectRows[int](c.Query(ctx, "SELECT i * i FROM generate_series(1, 3) i", nil))
	fmt.Println(squares, err)
	// Output:
	// [{1 1} {2 4} {3 9}] <nil>
	// [1 4 9] <nil>
}

func ExampleClient_Insert() {
	ctx := context.Background()
	c, _ := client.New(nc)

	type user struct {
		Email  string `json:"email"`
		Active bool   `json:"active"`
	}
	u, err := client.CollectOneRow[user](c.Insert(ctx, "users", map[string]any{"email": "ada@example.com"},
		client.WithReturning("email", "active")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(u.Email, u.Active)

	// A second insert of the same email violates the unique constraint.
	_, err = c.Insert(ctx, "users", map[string]any{"email": "ada@example.com"})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code, e.SQLState)
	}
	// Output:
	// ada@example.com true
	// 409 SQL_ERROR 23505
}

func ExampleClient_QueryRow() {
	ctx := context.Background()
	c, _ := client.New(nc)

	var user struct {
		Email  string `json:"email"`
		Active bool   `json:"active"`
	}
	err := c.QueryRow(ctx, "SELECT email, active FROM users WHERE email = $1", client.Args{"nobody@example.com"}).Scan(&user)
	fmt.Println(errors.Is(err, client.ErrNoRows))
	// Output: true
}

func ExampleClient_Tx() {
	ctx := context.Background()
	c, _ := client.New(nc)

	res, err := c.Tx(ctx, []client.Statement{
		{SQL: "INSERT INTO users (email) VALUES (:email)", Args: client.NamedArgs{"email": "tx@example.com"}},
		{SQL: "SELECT count(*) AS n FROM users WHERE email = $1", Args: client.Args{"tx@example.com"}, QueryRow: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(res.Results[1].Row))
	// Output: {"n":1}
}

func ExampleRateLimits_Allow() {
	ctx := context.Background()
	c, _ := client.New(nc)

	for range 3 {
		res, err := c.RateLimits().Allow(ctx, "example:user-1", 2, time.Minute)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(res.Allowed, res.Remaining)
	}
	// A call of cost 2 takes two units at once.
	res, _ := c.RateLimits().Allow(ctx, "example:user-2", 2, time.Minute, client.WithCost(2))
	fmt.Println(res.Allowed, res.Remaining)
	// Output:
	// true 1
	// true 0
	// false 0
	// true 0
}

func ExampleLocks_Lock() {
	ctx := context.Background()
	c, _ := client.New(nc)

	l, err := c.Locks().Lock(ctx, "example:report", 3*time.Second, client.WithOwner("svc-a"))
	if err != nil {
		fmt.Println(err)
		return
	}
	// While held (and refreshed in the background) no one else gets it.
	_, err = c.Locks().Lock(ctx, "example:report", 3*time.Second, client.WithOwner("svc-b"))
	fmt.Println(errors.Is(err, client.ErrNotAcquired))
	fmt.Println(l.Unlock(ctx))
	// Output:
	// true
	// <nil>
}

func ExampleKV() {
	ctx := context.Background()
	kv := mustClient().KV()

	if err := kv.Set(ctx, "example:cfg", map[string]int{"workers": 3}, client.WithTTL(time.Hour)); err != nil {
		fmt.Println(err)
		return
	}
	var cfg map[string]int
	fmt.Println(kv.Get(ctx, "example:cfg", &cfg), cfg["workers"])
	fmt.Println(errors.Is(kv.Get(ctx, "example:none", &cfg), client.ErrKeyNotFound))
	// Output:
	// <nil> 3
	// true
}

func ExampleEmbeddings() {
	ctx := context.Background()
	emb := mustClient().Embeddings()

	key := client.ByText("mini-lm", "hello world")
	if _, err := emb.Set(ctx, key, []float32{0.25, -0.5, 1}, client.WithTTL(time.Hour)); err != nil {
		fmt.Println(err)
		return
	}
	v, err := emb.Get(ctx, key)
	fmt.Println(v, err)
	// Output: [0.25 -0.5 1] <nil>
}

func ExampleVectors_Search() {
	ctx := context.Background()
	vec := mustClient().Vectors()

	if _, err := vec.CreateCollection(ctx, "example_docs", 3); err != nil {
		fmt.Println(err)
		return
	}
	_, err := vec.Upsert(ctx, "example_docs", []client.VectorItem{
		{ID: "cats", Vector: []float32{1, 0, 0}, Metadata: map[string]any{"lang": "en"}},
		{ID: "chats", Vector: []float32{0.9, 0.1, 0}, Metadata: map[string]any{"lang": "fr"}},
		{ID: "dogs", Vector: []float32{0, 1, 0}, Metadata: map[string]any{"lang": "en"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	matches, err := vec.Search(ctx, "example_docs", []float32{1, 0.1, 0}, client.WithK(2), client.WithFilter(map[string]any{"lang": "en"}))
	for _, m := range matches {
		fmt.Println(m.ID)
	}
	fmt.Println(err)
	// Output:
	// cats
	// dogs
	// <nil>
}

// mustClient is a client over the examples' stack.
func mustClient() *client.Client {
	c, err := client.New(nc)
	if err != nil {
		panic(err)
	}
	return c
}

func ExampleClient_QueryStream() {
	ctx := context.Background()
	c, _ := client.New(nc)

	// Rows of any number, a few messages held at a time: the worker streams
	// an answer too large for one message, and waits for the client to read.
	rows, err := c.QueryStream(ctx, "SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 50000) g", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rows.Close()
	var sum int64
	for rows.Next() {
		var r struct {
			N int64  `json:"n"`
			H string `json:"h"`
		}
		if err := rows.Scan(&r); err != nil {
			fmt.Println(err)
			return
		}
		sum += r.N
	}
	fmt.Println(sum, rows.CommandTag(), rows.Err())
	// Output: 1250025000 SELECT 50000 <nil>
}

func ExampleAllRows() {
	ctx := context.Background()
	c, _ := client.New(nc)

	for n, err := range client.AllRows[int](c.QueryStream(ctx, "SELECT generate_series(1, 1000000) AS n", nil)) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if n == 3 {
			break // closes the rows: the worker stops the statement
		}
		fmt.Println(n)
	}
	// Output:
	// 1
	// 2
}
