package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mtlsproxy/mtlsproxy/certconfig"
)

const exampleConfig = "../../config.example.toml"

func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	if _, err := certconfig.LoadFile(exampleConfig); err != nil {
		t.Fatalf("config.example.toml does not load: %v", err)
	}
}

func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	keys := tomlKeys(reflect.TypeOf(certconfig.Config{}), "")
	if len(keys) < 30 {
		t.Fatalf("found only %d keys in certconfig.Config; the walk is broken", len(keys))
	}
	for _, key := range keys {
		name := key[strings.LastIndex(key, ".")+1:]
		re := regexp.MustCompile(`(?m)^#?\s*` + regexp.QuoteMeta(name) + `\s*=`)
		if !re.Match(data) {
			t.Errorf("config.example.toml does not show %s", key)
		}
	}
}

// tomlKeys lists the dotted TOML keys of a struct type, descending into tables and
// arrays of tables. Types with no tagged fields of their own (Duration) are values.
func tomlKeys(typ reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && hasTaggedField(ft) {
			keys = append(keys, tomlKeys(ft, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

func hasTaggedField(typ reflect.Type) bool {
	for i := 0; i < typ.NumField(); i++ {
		if tag := typ.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			return true
		}
	}
	return false
}
