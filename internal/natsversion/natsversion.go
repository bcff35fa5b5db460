// Package natsversion reads the version of the nats-server a connection
// reached and says what dbworker may rely on there: the oldest server it
// supports (Minimum) and the features that came later (TermReason).
//
// # At start
//
//	v, err := natsversion.Check(nc) // below Minimum: *UnsupportedError
//	if err != nil {
//		return err
//	}
//	log.Info().Stringer("nats_server", v).Msg("nats-server supported")
//
// A version string that does not parse (a custom build) is let through:
// Check returns the zero Version and no error, and Supports reports false
// for every feature, so the program takes the oldest behaviour.
package natsversion

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Version is a nats-server release: major, minor, patch.
type Version struct{ Major, Minor, Patch int }

// Minimum is the oldest nats-server dbworker supports: nats.go's jetstream
// package needs 2.9.0 (the named consumer create API, direct gets). Debian 12
// ships 2.9.10.
var Minimum = Version{2, 9, 0}

// TermReason is the first nats-server that understands a reason after
// +TERM (jetstream.Msg.TermWithReason). Older servers ignore such a
// termination, so the message comes back after its AckWait: send a plain
// Term to them.
var TermReason = Version{2, 10, 4}

// ErrUnsupported is what an UnsupportedError is (errors.Is).
var ErrUnsupported = errors.New("nats-server version not supported")

// UnsupportedError is the error of a server older than Minimum.
type UnsupportedError struct{ Server Version }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("nats-server %s is older than %s, the oldest dbworker supports; upgrade the server", e.Server, Minimum)
}

// Is reports ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Parse reads "2.10.4", "v2.10.4", "2.11.0-beta.1" or "2.10.27-binary". It
// reports false for a string without major.minor.patch.
func Parse(s string) (Version, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, false
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, true
}

// AtLeast reports whether v is o or newer.
func (v Version) AtLeast(o Version) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

// IsZero reports a version that could not be read.
func (v Version) IsZero() bool { return v == Version{} }

func (v Version) String() string {
	if v.IsZero() {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Check returns the version of the server nc is connected to, and an
// *UnsupportedError (ErrUnsupported) when it is older than Minimum. A version that does
// not parse is not refused: Check returns the zero Version.
func Check(nc *nats.Conn) (Version, error) {
	raw := nc.ConnectedServerVersion()
	v, ok := Parse(raw)
	if !ok {
		return Version{}, nil
	}
	if !v.AtLeast(Minimum) {
		return v, &UnsupportedError{Server: v}
	}
	return v, nil
}

// Supports reports whether the server nc is connected to now is feature or
// newer. It asks at each call: after a reconnect it may be another server of
// the cluster. An unreadable version supports nothing beyond Minimum.
func Supports(nc *nats.Conn, feature Version) bool {
	v, ok := Parse(nc.ConnectedServerVersion())
	return ok && v.AtLeast(feature)
}
