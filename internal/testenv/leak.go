package testenv

import (
	"testing"

	"go.uber.org/goleak"
)

// leakOptions are the goroutines every package may leave behind; none today.
// A goroutine that outlives its owner is a bug to fix where it starts, not an
// entry here: add one only for a library's goroutine that cannot be stopped,
// with the reason.
var leakOptions []goleak.Option

// VerifyNoLeaks runs the tests of m, then teardown (what TestMain itself
// started, such as a shared stack, in order), then fails the run if any
// goroutine is still running, and exits. Every TestMain of a package whose
// code starts goroutines is this call:
//
//	func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }
func VerifyNoLeaks(m *testing.M, teardown ...func()) {
	goleak.VerifyTestMain(thenTeardown{m, teardown}, leakOptions...)
}

// thenTeardown runs the tests, then the teardown, so that the leak check
// sees only what the tests left.
type thenTeardown struct {
	m        *testing.M
	teardown []func()
}

func (r thenTeardown) Run() int {
	code := r.m.Run()
	for _, f := range r.teardown {
		f()
	}
	return code
}
