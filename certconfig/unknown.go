package certconfig

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// schemaKeys maps each table of the schema ("" for the top level, "proxy",
// "certificate", ...) to the keys it accepts, read from the toml tags of Config.
var schemaKeys = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	addTable(m, "", reflect.TypeFor[Config]())
	return m
})

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func addTable(m map[string][]string, prefix string, t reflect.Type) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[prefix] = append(m[prefix], name)
		if sub, ok := tableType(f.Type); ok {
			addTable(m, joinKey(prefix, name), sub)
		}
	}
}

// tableType returns the struct a TOML table or array of tables decodes into.
func tableType(t reflect.Type) (reflect.Type, bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil, false
	}
	return t, true
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// unknownKeys turns the keys TOML decoding left unused into errors, one per unknown
// key or table (not one more for each key inside an unknown table).
func unknownKeys(src string, keys []toml.Key) []error {
	var errs []error
	reported := map[string]bool{}
	for _, k := range keys {
		table, name, full := firstUnknown(k)
		if name == "" || reported[full] {
			continue
		}
		reported[full] = true
		errs = append(errs, fmt.Errorf("%s: %w %q; %s", src, ErrUnknownKey, full,
			suggest(table, name)))
	}
	return errs
}

// firstUnknown walks k down the schema and returns the first part the schema does
// not know, with the table it was found in and the key up to that part.
func firstUnknown(k toml.Key) (table, name, full string) {
	schema := schemaKeys()
	for i, part := range k {
		if !slices.Contains(schema[table], part) {
			return table, part, strings.Join(k[:i+1], ".")
		}
		table = joinKey(table, part)
	}
	return "", "", ""
}

func suggest(table, name string) string {
	known := schemaKeys()[table]
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= len(name)/2 {
		return fmt.Sprintf("did you mean %q?", joinKey(table, best))
	}
	where := "at the top level"
	if table != "" {
		where = "in [" + table + "]"
	}
	return fmt.Sprintf("remove it; the keys known %s are %s", where, strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
