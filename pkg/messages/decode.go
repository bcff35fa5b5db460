package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// DecodeStrict reads data, one JSON value, into v as strictly as the protocol
// asks, and is how the worker reads requests and jobs. data must be valid
// UTF-8 (encoding/json would quietly turn invalid bytes into U+FFFD and run
// something other than what was sent), name no field v lacks, hold values of
// v's types, and be followed by nothing but white space. Numbers decoded into
// an interface are [json.Number], so none loses digits. Empty data is
// malformed: a caller that reads an empty body as {} says so itself.
//
// Every refusal is a BAD_REQUEST [Error]; its Param names the field when there
// is one.
func DecodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return BadRequest("", "the request is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badJSON(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BadRequest("", "malformed JSON: unexpected data after the request object")
	}
	return nil
}

// badJSON says what encoding/json found wrong, in the protocol's words.
func badJSON(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return BadRequest("", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return BadRequest(te.Field, "field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for an unknown field, only this text.
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest(field, "unknown field %q", field)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return BadRequest("", "malformed JSON: unexpected end of input")
	}
	return BadRequest("", "malformed JSON: %v", err)
}
