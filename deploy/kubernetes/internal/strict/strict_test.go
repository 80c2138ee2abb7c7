package strict

import (
	"strings"
	"testing"
)

func TestDocuments(t *testing.T) {
	tests := []struct {
		name, in string
		want     int
	}{
		{"one", "a: 1\n", 1},
		{"leading comment and separator", "# c\n---\na: 1\n---\nb: 2\n", 2},
		{"empty documents skipped", "---\n# only a comment\n---\na: 1\n---\n", 1},
		{"separator inside a block scalar is not split", "a: |\n  x\n  ---\n  y\n", 1},
		{"none", "# nothing\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Documents([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != tt.want {
				t.Fatalf("Documents: %d documents %q, want %d", len(docs), docs, tt.want)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	type inner struct {
		Port int `json:"port"`
	}
	type obj struct {
		HostPID bool    `json:"hostPID"`
		Name    string  `json:"name"`
		Inner   []inner `json:"inner"`
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"valid", "hostPID: true\nname: x\ninner: [{port: 1}]\n", ""},
		{"unknown field", "hostPID: true\nnam: x\n", `unknown field "nam"`},
		{"case differs", "hostPid: true\n", `unknown field "hostPid"`},
		{"nested unknown field", "inner: [{prt: 1}]\n", `unknown field "inner[0].prt"`},
		{"duplicate key", "name: a\nname: b\n", "already set"},
		{"wrong type", "hostPID: \"yes\"\n", "cannot unmarshal"},
		{"not yaml", "a: [\n", "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o obj
			err := Unmarshal([]byte(tt.in), &o)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Unmarshal: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Unmarshal: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
