package state

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Options configure a backend. A backend reads what it needs.
type Options struct {
	// RedisURL is redis:// or rediss://; with addr= parameters it is a
	// cluster, with master_name= a Sentinel setup.
	RedisURL string
	// KeyPrefix namespaces every key (Redis). Defaults to "dbw:".
	KeyPrefix string
	// RedisPipelines is how many pipelines of script calls (rate limits,
	// locks) may be in flight at once (Redis); 0 sends each call alone. Nil
	// is the backend's default.
	RedisPipelines *int
}

// Factory opens a backend.
type Factory func(ctx context.Context, opts Options) (Backend, error)

// Registry maps backend names to factories, as the Python module's
// ConnectionManager did. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: make(map[string]Factory)} }

// Register adds or replaces the factory of name.
func (r *Registry) Register(name string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.factories[name] = f
}

// Names lists the registered names in order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open creates the backend registered as name.
func (r *Registry) Open(ctx context.Context, name string, opts Options) (Backend, error) {
	r.mu.RLock()
	f, ok := r.factories[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("state backend %q is not registered (have %v)", name, r.Names())
	}
	b, err := f(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("open state backend %s: %w", name, err)
	}
	return b, nil
}

// Deployment modes and backend names.
const (
	ModeSingleNode  = "single_node"
	ModeDistributed = "distributed"
	BackendMemory   = "memory"
	BackendRedis    = "redis"
)

// Choose picks the backend name for a deployment mode, with backend (may be
// empty) as an override, and refuses combinations that would give wrong
// answers.
func Choose(mode, backend string) (string, error) {
	switch mode {
	case ModeSingleNode, ModeDistributed:
	default:
		return "", fmt.Errorf("deployment mode must be %s or %s, got %q", ModeSingleNode, ModeDistributed, mode)
	}
	if backend == "" {
		if mode == ModeDistributed {
			return BackendRedis, nil
		}
		return BackendMemory, nil
	}
	if mode == ModeDistributed && backend == BackendMemory {
		return "", fmt.Errorf("the memory state backend cannot serve a distributed deployment: each worker would keep its own counters and locks; use redis")
	}
	return backend, nil
}
