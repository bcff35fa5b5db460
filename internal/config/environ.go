package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// process reads the environment into v, reporting a value of the wrong type
// as one line naming the variable and what it accepts.
func process(v any) error {
	err := envconfig.Process("", v)
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: must be %s, got %q", pe.KeyName, accepts(pe), pe.Value)
	}
	return err
}

// accepts says in words what a variable of pe's type takes.
func accepts(pe *envconfig.ParseError) string {
	var de interface{ Accepts() string }
	if errors.As(pe.Err, &de) {
		return de.Accepts()
	}
	switch pe.TypeName {
	case "int", "int8", "int16", "int32", "int64":
		return "a whole number, such as 10"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number, 0 or more"
	case "bool":
		return "true or false"
	case "float32", "float64":
		return "a number"
	}
	return "a " + pe.TypeName
}

// Suggestion is a variable of the environment that dbworker does not read,
// with the name of one it does that it was probably meant to be.
type Suggestion struct {
	Variable, DidYouMean string
}

func (s Suggestion) String() string {
	return fmt.Sprintf("%s is not a dbworker variable and is ignored; did you mean %s?", s.Variable, s.DidYouMean)
}

// Misspelt returns the variables of environ (KEY=value pairs, as os.Environ)
// that are not read from spec (a *Config or *Publisher) but are close to a
// name that is: within two edits (DEPLOYMNT_MODE), or the same but for case
// (nats_url). Other variables are not dbworker's business and are left alone.
func Misspelt(spec any, environ []string) []Suggestion {
	known := variables(reflect.TypeOf(spec).Elem())
	var out []Suggestion
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if known[k] || len(k) < 5 {
			continue
		}
		best, bestD := "", 3
		for name := range known {
			if strings.EqualFold(k, name) {
				best, bestD = name, 0
				break
			}
			if d := distance(strings.ToUpper(k), name, 3); d < bestD || d == bestD && d <= 2 && name < best {
				best, bestD = name, d
			}
		}
		if best != "" && bestD <= 2 {
			out = append(out, Suggestion{Variable: k, DidYouMean: best})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Variable < out[j].Variable })
	return out
}

// variables returns the names of the variables a struct reads
// (envconfig tags, embedded structs included).
func variables(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for n := range variables(f.Type) {
				names[n] = true
			}
			continue
		}
		if n := f.Tag.Get("envconfig"); n != "" {
			names[n] = true
		}
	}
	return names
}

// distance is the Levenshtein distance between a and b, or max when it is
// at least max.
func distance(a, b string, max int) int {
	if d := len(a) - len(b); d >= max || -d >= max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= max {
			return max
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], max)
}
