package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// field is what the struct tags declare about one config field. The tags are the single
// declaration that decoding, defaults, validation of enums, and the generated docs share:
//
//	yaml:"name"         the field's name in the file ("-" hides it)
//	default:"literal"   its default, written as in YAML ([1h, 1d] for lists)
//	enum:"a,b"          the only values a string field accepts
//	doc:"text"          one or two sentences for the reference and the example file
type field struct {
	index  int
	name   string
	def    string
	hasDef bool
	enum   []string
	doc    string
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf returns the config fields of struct type t in declaration order.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f := field{index: i, name: name, doc: sf.Tag.Get("doc")}
		f.def, f.hasDef = sf.Tag.Lookup("default")
		if e := sf.Tag.Get("enum"); e != "" {
			for v := range strings.SplitSeq(e, ",") {
				f.enum = append(f.enum, strings.TrimSpace(v))
			}
		}
		fs = append(fs, f)
	}
	fieldCache.Store(t, fs)
	return fs
}

var (
	durationType = reflect.TypeFor[Duration]()
	decimalType  = reflect.TypeFor[Decimal]()
)

// isBlock reports whether values of type t are written as a block of named fields.
func isBlock(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != decimalType
}

// isScalar reports whether values of type t are written as one YAML scalar.
func isScalar(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Interface:
		return false
	case reflect.Struct:
		return t == decimalType
	}
	return true
}

// setDefaults sets every field of the struct v, recursively, to its default tag's value.
// Fields without a default keep their zero value; blocks get their own fields' defaults.
func setDefaults(v reflect.Value, path string) error {
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		child := joinPath(path, f.name)
		if fv.Kind() == reflect.Struct && fv.Type() != decimalType {
			if err := setDefaults(fv, child); err != nil {
				return err
			}
		}
		if !f.hasDef {
			continue
		}
		var n *yaml.Node
		if isScalar(fv.Type()) {
			// Taken verbatim: "-" or "1.0" must not go through YAML's resolution.
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.def}
		} else {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(f.def), &doc); err != nil {
				return fmt.Errorf("config: default of %s: %v", child, err)
			}
			if len(doc.Content) != 1 {
				return fmt.Errorf("config: default of %s: empty", child)
			}
			n = doc.Content[0]
		}
		d := newDecoder("default", nil)
		d.decode(n, fv, child, 0)
		if len(d.issues) > 0 {
			return fmt.Errorf("config: default of %s: %s", child, d.issues[0].Msg)
		}
		if bad, ok := badEnum(fv, f.enum); ok {
			return fmt.Errorf("config: default of %s: %q is not one of %s", child, bad, strings.Join(f.enum, ", "))
		}
	}
	return nil
}

// newValue returns a new value of type t with its defaults set, for a list element, a map
// value or a pointer's target.
func newValue(t reflect.Type, path string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	if t.Kind() == reflect.Struct && t != decimalType {
		if err := setDefaults(v, path); err != nil {
			return v, err
		}
	}
	return v, nil
}

// badEnum returns the first value in v (a string, or a list of strings) that is not one of
// enum, and whether there is one.
func badEnum(v reflect.Value, enum []string) (string, bool) {
	if len(enum) == 0 {
		return "", false
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		if !slices.Contains(enum, v.String()) {
			return v.String(), true
		}
	case reflect.Slice:
		for i := range v.Len() {
			if bad, ok := badEnum(v.Index(i), enum); ok {
				return bad, true
			}
		}
	}
	return "", false
}

// joinPath appends a field or map key to a dotted path.
func joinPath(path, name string) string {
	if !plainKey(name) {
		name = fmt.Sprintf("%q", name)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// plainKey reports whether a key can appear unquoted in a dotted path.
func plainKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
