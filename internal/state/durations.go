package state

import (
	"math"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Durations on the wire are whole milliseconds (<field>_ms) or seconds
// (<field>_seconds, fractions allowed), never both. Seconds are rounded up
// to a whole millisecond, so a positive duration never becomes 0 (which,
// for a TTL, would mean "no expiry").

// duration reads a positive duration given in milliseconds or seconds (not
// both): def when neither is given, unless required.
func duration(field string, ms *int64, secs *float64, def, max time.Duration, required bool) (time.Duration, error) {
	if ms != nil && secs != nil {
		return 0, messages.BadRequest(field, "give %s_ms or %s_seconds, not both", field, field)
	}
	switch {
	case ms != nil:
		if *ms <= 0 {
			return 0, messages.BadRequest(field+"_ms", "%s_ms must be positive, got %d", field, *ms)
		}
		if *ms > max.Milliseconds() {
			return 0, messages.BadRequest(field+"_ms", "%s_ms must be at most %d", field, max.Milliseconds())
		}
		return time.Duration(*ms) * time.Millisecond, nil
	case secs != nil:
		if !(*secs > 0) {
			return 0, messages.BadRequest(field+"_seconds", "%s_seconds must be positive", field)
		}
		return seconds(field, *secs, max)
	case required:
		return 0, messages.BadRequest(field+"_ms", "%s_ms is required", field)
	}
	return def, nil
}

// optionalTTL reads a ttl_ms or ttl_seconds (not both) that may be 0: no
// expiry. def applies when neither is given.
func optionalTTL(ms *int64, secs *float64, def time.Duration) (time.Duration, error) {
	if ms != nil && secs != nil {
		return 0, messages.BadRequest("ttl", "give ttl_ms or ttl_seconds, not both")
	}
	switch {
	case ms != nil:
		if *ms < 0 {
			return 0, messages.BadRequest("ttl_ms", "ttl_ms must not be negative, got %d", *ms)
		}
		if *ms > MaxTTL.Milliseconds() {
			return 0, messages.BadRequest("ttl_ms", "ttl_ms must be at most %d", MaxTTL.Milliseconds())
		}
		return time.Duration(*ms) * time.Millisecond, nil
	case secs != nil:
		if !(*secs >= 0) {
			return 0, messages.BadRequest("ttl_seconds", "ttl_seconds must not be negative")
		}
		if *secs == 0 {
			return 0, nil
		}
		return seconds("ttl", *secs, MaxTTL)
	}
	return def, nil
}

// seconds converts a positive number of seconds to a duration, rounded up to
// a whole millisecond.
func seconds(field string, secs float64, limit time.Duration) (time.Duration, error) {
	if math.IsInf(secs, 0) || secs > limit.Seconds() {
		return 0, messages.BadRequest(field+"_seconds", "%s_seconds must be at most %.0f", field, limit.Seconds())
	}
	// To the nearest nanosecond first, so that 0.3 (300000000.00000006 ns
	// as a float) is 300 ms, not 301.
	ns := int64(math.Round(secs * float64(time.Second)))
	ms := (ns + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return time.Duration(max(ms, 1)) * time.Millisecond, nil
}
