// Package state will hold the state backends (memory for one node, Redis when
// distributed) behind state.lock, state.ratelimit, state.kv and
// cache.embedding. It is empty until the state issue lands.
package state
