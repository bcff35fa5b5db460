package pgjson

import (
	"encoding/binary"
)

const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// appendNumeric prints a binary numeric exactly as PostgreSQL's numeric_out does:
// every digit, the column's scale kept (1.50 stays 1.50). NaN and ±Infinity
// become JSON strings.
//
// The binary form is int16 ndigits, int16 weight, uint16 sign, int16 dscale and
// ndigits base-10000 digits; the first digit is worth 10000^weight.
func appendNumeric(b []byte, v []byte) ([]byte, error) {
	if len(v) < 8 {
		return b, errShortValue
	}
	ndigits := int(int16(binary.BigEndian.Uint16(v)))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	sign := binary.BigEndian.Uint16(v[4:])
	dscale := int(int16(binary.BigEndian.Uint16(v[6:])))
	switch sign {
	case numericNaN:
		return append(b, `"NaN"`...), nil
	case numericPInf:
		return append(b, `"Infinity"`...), nil
	case numericNInf:
		return append(b, `"-Infinity"`...), nil
	case numericPos, numericNeg:
	default:
		return b, errShortValue
	}
	if ndigits < 0 || dscale < 0 || len(v) != 8+2*ndigits {
		return b, errShortValue
	}
	digit := func(i int) int {
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(v[8+2*i:]))
	}
	if sign == numericNeg {
		b = append(b, '-')
	}
	// Integer part: digits 0..weight, without leading zeros (PostgreSQL
	// never sends a zero first digit, but malformed input must still make a
	// valid JSON number).
	intStart := len(b)
	if weight < 0 {
		b = append(b, '0')
	} else {
		for i := 0; i <= weight; i++ {
			d := digit(i)
			if d > 9999 {
				return b, errShortValue
			}
			b = append(b, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
		}
		lead := intStart
		for lead < len(b)-1 && b[lead] == '0' {
			lead++
		}
		b = append(b[:intStart], b[lead:]...)
	}
	// Fraction: dscale decimal digits from digit weight+1 on.
	if dscale > 0 {
		b = append(b, '.')
		for i, written := weight+1, 0; written < dscale; i++ {
			d := digit(i)
			if d > 9999 {
				return b, errShortValue
			}
			for _, c := range [4]byte{byte('0' + d/1000), byte('0' + d/100%10), byte('0' + d/10%10), byte('0' + d%10)} {
				if written == dscale {
					break
				}
				b = append(b, c)
				written++
			}
		}
	}
	return b, nil
}
