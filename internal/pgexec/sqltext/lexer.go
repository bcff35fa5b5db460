package sqltext

import (
	"strconv"
	"strings"
)

// Style tells the three parameter styles apart.
type Style uint8

const (
	Named      Style = iota + 1 // :name
	Positional                  // $1
	Question                    // ?
)

// Placeholder is one parameter marker found in a statement.
type Placeholder struct {
	Style      Style
	Start, End int    // byte offsets in the SQL text
	Name       string // :name without the colon
	Index      int    // $n
}

// Statement is one top-level Statement of a SQL text, split on semicolons
// outside literals, quoted identifiers, dollar quotes and comments.
type Statement struct {
	Start, End int
	Keyword    string // the first word, upper-cased ("SELECT", "BEGIN", ...)
	Keyword2   string // the word after it, upper-cased ("TRANSACTION" in PREPARE TRANSACTION)
}

// Scanned is what the lexer learned about a SQL text.
type Scanned struct {
	Placeholders []Placeholder
	Statements   []Statement
	Positional   int // count of $n markers
	Named        int // count of :name markers
	Question     int // count of ? markers
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// Scan walks a SQL text the way PostgreSQL's lexer does for everything that
// matters to parameter binding: string literals ('...', E'...' with backslash
// escapes), quoted identifiers, dollar-quoted bodies ($$...$$, $tag$...$tag$),
// line and nested block comments and :: casts are skipped; :name, $n and ?
// markers outside them are recorded, and so are statement boundaries.
//
// An unterminated literal or comment swallows the rest of the text, as it would
// on the server, which then reports the syntax error.
func Scan(sql string) Scanned {
	var s Scanned
	stmtStart := 0
	keyword, keyword2 := "", ""
	n := len(sql)
	endStmt := func(end int) {
		if keyword != "" {
			s.Statements = append(s.Statements, Statement{Start: stmtStart, End: end, Keyword: keyword, Keyword2: keyword2})
		}
		stmtStart, keyword, keyword2 = end+1, "", ""
	}
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == '\'':
			escapes := i > 0 && (sql[i-1] == 'e' || sql[i-1] == 'E') && (i < 2 || !isIdentChar(sql[i-2]))
			i = skipQuoted(sql, i+1, '\'', escapes)
		case c == '"':
			i = skipQuoted(sql, i+1, '"', false)
		case c == '-' && i+1 < n && sql[i+1] == '-':
			// PostgreSQL ends a line comment at \n or \r.
			j := strings.IndexAny(sql[i:], "\n\r")
			if j < 0 {
				i = n
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
		case c == '$':
			if i > 0 && isIdentChar(sql[i-1]) { // part of an identifier such as foo$1
				i++
				continue
			}
			j := i + 1
			for j < n && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j > i+1 {
				idx, err := strconv.Atoi(sql[i+1 : j])
				if err != nil {
					idx = -1 // absurdly large: rejected by the binder
				}
				s.Placeholders = append(s.Placeholders, Placeholder{Style: Positional, Start: i, End: j, Index: idx})
				s.Positional++
				i = j
				continue
			}
			if end, ok := skipDollarQuote(sql, i); ok {
				i = end
				continue
			}
			i++
		case c == ':':
			if i+1 < n && sql[i+1] == ':' { // a cast: ::type
				i += 2
				continue
			}
			if i+1 < n && isIdentStart(sql[i+1]) && sql[i+1] < 0x80 {
				j := i + 2
				for j < n && (isIdentStart(sql[j]) || sql[j] >= '0' && sql[j] <= '9') {
					j++
				}
				s.Placeholders = append(s.Placeholders, Placeholder{Style: Named, Start: i, End: j, Name: sql[i+1 : j]})
				s.Named++
				i = j
				continue
			}
			i++
		case c == '?':
			s.Placeholders = append(s.Placeholders, Placeholder{Style: Question, Start: i, End: i + 1})
			s.Question++
			i++
		case c == ';':
			endStmt(i)
			i++
		case isIdentStart(c):
			j := i + 1
			for j < n && isIdentChar(sql[j]) {
				j++
			}
			switch {
			case keyword == "":
				keyword = strings.ToUpper(sql[i:j])
				stmtStart = min(stmtStart, i)
			case keyword2 == "":
				keyword2 = strings.ToUpper(sql[i:j])
			}
			i = j
		default:
			if keyword == "" && c == '(' {
				keyword = "("
			}
			i++
		}
	}
	endStmt(n)
	return s
}

// skipQuoted returns the offset just past the closing quote of a literal or
// quoted identifier whose body starts at i. A doubled quote is an escaped one;
// with escapes, a backslash escapes the next byte.
func skipQuoted(sql string, i int, quote byte, escapes bool) int {
	for i < len(sql) {
		switch sql[i] {
		case '\\':
			if escapes {
				i += 2
				continue
			}
		case quote:
			if i+1 < len(sql) && sql[i+1] == quote {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(sql)
}

// skipBlockComment returns the offset just past a (possibly nested) block
// comment starting at i.
func skipBlockComment(sql string, i int) int {
	depth := 0
	for i < len(sql) {
		if sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*' {
			depth++
			i += 2
			continue
		}
		if sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/' {
			depth--
			i += 2
			if depth == 0 {
				return i
			}
			continue
		}
		i++
	}
	return len(sql)
}

// skipDollarQuote recognises $tag$ at i and returns the offset past the closing
// $tag$. ok is false when i does not start a dollar quote.
func skipDollarQuote(sql string, i int) (end int, ok bool) {
	j := i + 1
	if j < len(sql) && sql[j] != '$' {
		if !isIdentStart(sql[j]) {
			return 0, false
		}
		for j < len(sql) && sql[j] != '$' {
			if !isIdentStart(sql[j]) && !(sql[j] >= '0' && sql[j] <= '9') {
				return 0, false
			}
			j++
		}
	}
	if j >= len(sql) {
		return 0, false
	}
	tag := sql[i : j+1]
	k := strings.Index(sql[j+1:], tag)
	if k < 0 {
		return len(sql), true
	}
	return j + 1 + k + len(tag), true
}

// Rewrite replaces the placeholders of one kind with $offset+1, $offset+2, ...
// For named placeholders a name used twice gets one number; names lists the
// names in number order. For question marks each gets the next number.
func Rewrite(sql string, phs []Placeholder, kind Style, offset int) (out string, names []string) {
	var b strings.Builder
	b.Grow(len(sql) + 8)
	last := 0
	numbers := map[string]int{}
	for _, p := range phs {
		if p.Style != kind {
			continue
		}
		var num int
		if kind == Named {
			n, ok := numbers[p.Name]
			if !ok {
				names = append(names, p.Name)
				n = offset + len(names)
				numbers[p.Name] = n
			}
			num = n
		} else {
			names = append(names, "?"+strconv.Itoa(len(names)+1))
			num = offset + len(names)
		}
		b.WriteString(sql[last:p.Start])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(num))
		last = p.End
	}
	b.WriteString(sql[last:])
	return b.String(), names
}
