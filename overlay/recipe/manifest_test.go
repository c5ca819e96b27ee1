package recipe

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// manifestSchema compiles the copy of Volant's plugin manifest schema kept
// in testdata (the interface contract; see testdata/schemas/README.md).
func manifestSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return schema(t, "plugin-manifest-v1.json")
}

// schema compiles testdata/schemas/NAME.
func schema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(here), "..", "..", "testdata", "schemas", name)
	c := jsonschema.NewCompiler()
	s, err := c.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateJSON(t *testing.T, s *jsonschema.Schema, m *Manifest) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc); err != nil {
		t.Fatalf("manifest does not validate:\n%s\n%v", buf.String(), err)
	}
	var out map[string]any
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var facts = ManifestFacts{Name: "demo", Entrypoint: []string{"/usr/bin/app"}, Artifact: "plugin.cpio.gz", SHA256: strings.Repeat("ab", 32)}

func TestManifestDefaultsValidate(t *testing.T) {
	m, _, err := LoadManifest("")
	if err != nil {
		t.Fatal(err)
	}
	m.Complete(facts)
	out := validateJSON(t, manifestSchema(t), m)
	w := out["workload"].(map[string]any)
	if w["type"] != "http" || w["base_url"] != "http://127.0.0.1:8080" || out["name"] != "demo" || out["runtime"] != "demo" {
		t.Errorf("defaults not applied: %v", out)
	}
	ir := out["initramfs"].(map[string]any)
	if ir["url"] != "plugin.cpio.gz" || ir["checksum"] != "sha256:"+facts.SHA256 {
		t.Errorf("initramfs = %v", ir)
	}
}

// TestManifestURLIsPercentEncoded: initramfs.url is a URL reference, so an
// artifact name with a space or a colon is escaped, and still validates.
func TestManifestURLIsPercentEncoded(t *testing.T) {
	for name, want := range map[string]string{"my app.cpio.gz": "my%20app.cpio.gz", "a:b#1?.cpio": "./a:b%231%3F.cpio", "ok.cpio.gz": "ok.cpio.gz"} {
		m, _, err := LoadManifest("")
		if err != nil {
			t.Fatal(err)
		}
		f := facts
		f.Artifact = name
		m.Complete(f)
		out := validateJSON(t, manifestSchema(t), m)
		if got := out["initramfs"].(map[string]any)["url"]; got != want {
			t.Errorf("artifact %q: initramfs.url %q, want %q", name, got, want)
		}
	}
}

func TestManifestEarlierFormConverted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "manifest.toml")
	text := `schema_version = "v1"
name = "go-webserver"
version = "1.0.0"
runtime = "go-webserver"

[resources]
cpu_cores = 2
memory_mb = 256

[workload]
entrypoint = "/usr/bin/webserver"
args = ["--config", "/etc/webserver/config.yaml"]

[env]
PORT = "8080"

[network]
mode = "bridged"

[[network.expose]]
port = 8080
protocol = "tcp"
`
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m, warn, err := LoadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "network.expose") {
		t.Errorf("warnings = %q, want one about network.expose", warn)
	}
	m.Complete(facts)
	out := validateJSON(t, manifestSchema(t), m)
	w := out["workload"].(map[string]any)
	got, _ := json.Marshal(w["entrypoint"])
	if string(got) != `["/usr/bin/webserver","--config","/etc/webserver/config.yaml"]` {
		t.Errorf("entrypoint = %s", got)
	}
	if env := w["env"].(map[string]any); env["PORT"] != "8080" {
		t.Errorf("env = %v", env)
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"nmae = \"x\"", `manifest.toml:1: unknown key "nmae" at the top level; did you mean "name"?`},
		{"[resources]\ncpu_core = 2", `manifest.toml:2: unknown key "cpu_core" in [resources]; did you mean "cpu_cores"?`},
		{"[actions.start]\nmethd = \"POST\"", `manifest.toml:2: unknown key "methd" in [actions.start]; did you mean "method"?`},
		{"[[disks]]\nname = \"d\"\nsource = \"s\"\nreadonyl = true", `unknown key "readonyl" in [disks]; did you mean "readonly"?`},
		{"[health_check]\nzzzzzz = 1", `unknown key "zzzzzz" in [health_check]; known keys: endpoint, timeout_ms`},
		{"[workload]\nentrypoint = 5", "workload.entrypoint must be a string or an array of strings"},
		{"name = = 1\n", "manifest.toml:1: "},
		{"[resources]\ncpu_cores = \"2\"", `manifest.toml:2: resources.cpu_cores: expected an integer, found a string`},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "manifest.toml")
		if err := os.WriteFile(p, []byte(tt.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadManifest(p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.text, err, tt.want)
		}
	}
	if _, _, err := LoadManifest("/nonexistent/manifest.toml"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing manifest: %v", err)
	}
}

// A manifest a build wrote reads back as it was; a manifest.toml reads as
// LoadManifest reads it.
func TestReadManifestTakesBuiltJSON(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{Workload: Workload{Entry: Entrypoint{"/usr/bin/app", "-v"}}}
	m.Complete(facts)
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	built := filepath.Join(dir, "plugin.manifest.json")
	if err := os.WriteFile(built, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := ReadManifest(built)
	if err != nil || strings.Join(got.Workload.Entry, " ") != "/usr/bin/app -v" || got.Initramfs.URL != "plugin.cpio.gz" {
		t.Fatalf("ReadManifest(%s) = %+v, %v", built, got, err)
	}
	tests := []struct{ name, text, want string }{
		{"manifest.toml", "[workload]\nentrypoint = \"/usr/bin/x\"\n", ""},
		{"bad.manifest.json", "{\n  \"name\": \"x\",\n  \"nmae\": \"y\"\n}\n", `bad.manifest.json: unknown field "nmae"`},
		{"type.manifest.json", "{\n  \"resources\": {\n    \"cpu_cores\": \"2\"\n  }\n}\n", `type.manifest.json:3: resources.cpu_cores: expected int, found a JSON string`},
		{"cut.manifest.json", "{\n  \"name\": \n", `cut.manifest.json:`},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name)
		if err := os.WriteFile(p, []byte(tt.text), 0o644); err != nil {
			t.Fatal(err)
		}
		m, _, err := ReadManifest(p)
		switch {
		case tt.want == "" && (err != nil || m.Workload.Entry[0] != "/usr/bin/x"):
			t.Errorf("%s: %+v, %v", tt.name, m, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}
