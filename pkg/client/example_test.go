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
	c := client.New(nc)

	res, err := c.Query(ctx, "SELECT :n::int8 * 2 AS doubled", map[string]any{"n": 21})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(res.Rows))
	// Output: [{"doubled":42}]
}

func ExampleClient_Insert() {
	ctx := context.Background()
	c := client.New(nc)

	row, err := c.Insert(ctx, "users", map[string]any{"email": "ada@example.com"}, "email", "active")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(row["email"], row["active"])

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

func ExampleClient_QueryOne() {
	ctx := context.Background()
	c := client.New(nc)

	var user struct {
		Email  string `json:"email"`
		Active bool   `json:"active"`
	}
	found, err := c.QueryOne(ctx, &user, "SELECT email, active FROM users WHERE email = $1", []any{"nobody@example.com"})
	fmt.Println(found, err)
	// Output: false <nil>
}

func ExampleClient_RateLimit() {
	ctx := context.Background()
	c := client.New(nc)

	for i := 0; i < 3; i++ {
		res, err := c.RateLimit(ctx, "example:user-1", 2, time.Minute)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(res.Allowed, res.Remaining)
	}
	// Output:
	// true 1
	// true 0
	// false 0
}

func ExampleClient_Lock() {
	ctx := context.Background()
	c := client.New(nc)

	l, err := c.Lock(ctx, "example:report", "svc-a", 3*time.Second, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	// While held (and refreshed in the background) no one else gets it.
	_, err = c.Lock(ctx, "example:report", "svc-b", 3*time.Second, 0)
	fmt.Println(errors.Is(err, client.ErrNotAcquired))
	fmt.Println(l.Unlock(ctx))
	// Output:
	// true
	// <nil>
}

func ExampleClient_SetEmbeddingForText() {
	ctx := context.Background()
	c := client.New(nc)

	if _, err := c.SetEmbeddingForText(ctx, "mini-lm", "hello world", []float32{0.25, -0.5, 1}, time.Hour); err != nil {
		fmt.Println(err)
		return
	}
	v, hit, err := c.GetEmbeddingForText(ctx, "mini-lm", "hello world")
	fmt.Println(v, hit, err)
	// Output: [0.25 -0.5 1] true <nil>
}
