package pgjson

import "github.com/jeeves-avionics/dbworker/pkg/messages"

// ShapeOf reads how a db.execute request wants its results written: its
// row_format, its max_rows (capped by rowCap, which is also the default)
// and its safe_numbers (safeDefault when the request leaves it out).
func ShapeOf(req *messages.ExecuteRequest, rowCap int, safeDefault bool) (Shape, error) {
	sh := Shape{MaxRows: rowCap, SafeNumbers: safeDefault}
	switch req.RowFormat {
	case "", messages.RowFormatObject:
	case messages.RowFormatArray:
		sh.Arrays = true
	default:
		return Shape{}, messages.BadRequest("row_format", "row_format must be \"object\" or \"array\", got %q", req.RowFormat)
	}
	if req.MaxRows != nil {
		if *req.MaxRows < 0 {
			return Shape{}, messages.BadRequest("max_rows", "max_rows must not be negative")
		}
		sh.MaxRows = min(*req.MaxRows, rowCap)
	}
	if req.SafeNumbers != nil {
		sh.SafeNumbers = *req.SafeNumbers
	}
	return sh, nil
}
