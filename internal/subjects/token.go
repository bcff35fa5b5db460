package subjects

import (
	"fmt"
	"strings"
)

const hexDigits = "0123456789ABCDEF"

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// EncodeToken maps an identifier (a schema or table name) to one valid subject
// token: bytes in [A-Za-z0-9_-] stay, every other byte is written %XX. The empty
// string becomes the token "%". Escapes use upper-case hex, so the mapping is
// one-to-one and DecodeToken accepts only the canonical form.
func EncodeToken(ident string) string {
	if ident == "" {
		return "%"
	}
	n := 0
	for i := 0; i < len(ident); i++ {
		if !tokenSafe(ident[i]) {
			n++
		}
	}
	if n == 0 {
		return ident
	}
	var b strings.Builder
	b.Grow(len(ident) + 2*n)
	for i := 0; i < len(ident); i++ {
		c := ident[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken.
func DecodeToken(tok string) (string, error) {
	if tok == "%" {
		return "", nil
	}
	if !strings.Contains(tok, "%") {
		for i := 0; i < len(tok); i++ {
			if !tokenSafe(tok[i]) {
				return "", fmt.Errorf("decode subject token %q: byte %q must be escaped", tok, tok[i])
			}
		}
		return tok, nil
	}
	b := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '%':
			if i+2 >= len(tok) {
				return "", fmt.Errorf("decode subject token %q: truncated escape at %d", tok, i)
			}
			hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("decode subject token %q: bad escape at %d", tok, i)
			}
			v := byte(hi<<4 | lo)
			if tokenSafe(v) {
				return "", fmt.Errorf("decode subject token %q: %q must not be escaped", tok, v)
			}
			b = append(b, v)
			i += 2
		case tokenSafe(c):
			b = append(b, c)
		default:
			return "", fmt.Errorf("decode subject token %q: byte %q must be escaped", tok, c)
		}
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
