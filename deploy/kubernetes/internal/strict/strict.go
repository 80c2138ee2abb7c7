// Package strict decodes YAML into Kubernetes API types the way the API
// server's strict field validation does: an unknown field, a field whose case
// differs from the schema's, a duplicate key or a value of the wrong type is
// an error, not something dropped.
//
// encoding/json (and so sigs.k8s.io/yaml.UnmarshalStrict) matches field
// names case-insensitively, so `hostpid: true` would pass for `hostPID`;
// this package uses sigs.k8s.io/json, the decoder Kubernetes itself uses.
package strict

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Unmarshal decodes one YAML document into v (a pointer to a struct) and
// fails on unknown fields, case-mismatched fields, duplicate keys and type
// mismatches. It is safe for concurrent use.
func Unmarshal(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return fmt.Errorf("strict: yaml: %w", err)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return fmt.Errorf("strict: %w", err)
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("strict: %w", errors.Join(strictErrs...))
	}
	return nil
}

// Documents splits a multi-document YAML stream at its `---` separators and
// returns the documents that hold something other than comments and blank
// lines, in order.
func Documents(stream []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("strict: split documents: %w", err)
		}
		if !empty(doc) {
			docs = append(docs, doc)
		}
	}
}

// empty reports whether a document has only comments, blank lines and
// separators.
func empty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || bytes.Equal(line, []byte("---")) {
			continue
		}
		return false
	}
	return true
}
