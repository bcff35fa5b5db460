package pgjson

import "strconv"

// Safe numbers (the request option safe_numbers) keep every digit for a
// caller whose JSON parser reads numbers as float64 (JavaScript's
// JSON.parse): a numeric value, and an int8 value that a float64 cannot hold
// exactly, are written as JSON strings of the same digits.

// MaxSafeInteger is 2^53−1, the largest integer n such that every integer
// of magnitude up to n is a float64 (JavaScript's Number.MAX_SAFE_INTEGER).
// With safe numbers an int8 value past ±MaxSafeInteger is a string.
const MaxSafeInteger = 1<<53 - 1

// appendInt8 writes an int8, quoted when safe and past ±MaxSafeInteger.
func appendInt8(b []byte, n int64, safe bool) []byte {
	if !safe || (n >= -MaxSafeInteger && n <= MaxSafeInteger) {
		return strconv.AppendInt(b, n, 10)
	}
	b = append(b, '"')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '"')
}

// appendQuotedNumeric writes a numeric as a JSON string of the digits
// PostgreSQL prints ("1.10"); NaN and ±Infinity are strings already.
func appendQuotedNumeric(b []byte, v []byte) ([]byte, error) {
	start := len(b)
	b = append(b, '"')
	out, err := appendNumeric(b, v)
	if err != nil {
		return out[:start], err
	}
	if out[len(out)-1] == '"' { // "NaN", "Infinity", "-Infinity"
		return append(out[:start], out[start+1:]...), nil
	}
	return append(out, '"'), nil
}
