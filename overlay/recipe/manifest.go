package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Manifest is the Volant plugin manifest (plugin-manifest-v1.json). Field
// order and omitempty follow the schema so the JSON reads like the spec.
type Manifest struct {
	Schema        string            `json:"$schema,omitempty" toml:"$schema"`
	SchemaVersion string            `json:"schema_version" toml:"schema_version"`
	Name          string            `json:"name" toml:"name"`
	Version       string            `json:"version" toml:"version"`
	Runtime       string            `json:"runtime" toml:"runtime"`
	Image         string            `json:"image,omitempty" toml:"image"`
	ImageDigest   string            `json:"image_digest,omitempty" toml:"image_digest"`
	Enabled       *bool             `json:"enabled,omitempty" toml:"enabled"`
	OpenAPI       string            `json:"openapi,omitempty" toml:"openapi"`
	Labels        map[string]string `json:"labels,omitempty" toml:"labels"`
	Resources     Resources         `json:"resources" toml:"resources"`
	Workload      Workload          `json:"workload" toml:"workload"`
	HealthCheck   *HealthCheck      `json:"health_check,omitempty" toml:"health_check"`
	Actions       map[string]Action `json:"actions,omitempty" toml:"actions"`
	Initramfs     *Initramfs        `json:"initramfs,omitempty" toml:"initramfs"`
	Disks         []Disk            `json:"disks,omitempty" toml:"disks"`
	CloudInit     *CloudInit        `json:"cloud_init,omitempty" toml:"cloud_init"`
	Network       *Network          `json:"network,omitempty" toml:"network"`
	Devices       *Devices          `json:"devices,omitempty" toml:"devices"`

	// The earlier manifest.toml put env at the top level; it moves into
	// workload.env.
	LegacyEnv map[string]string `json:"-" toml:"env"`
}

// Resources are the VM's default size.
type Resources struct {
	CPUCores int `json:"cpu_cores" toml:"cpu_cores"`
	MemoryMB int `json:"memory_mb" toml:"memory_mb"`
}

// Workload is what Kestrel runs and how Volant reaches it.
type Workload struct {
	Type    string            `json:"type" toml:"type"`
	BaseURL string            `json:"base_url" toml:"base_url"`
	Entry   Entrypoint        `json:"entrypoint" toml:"entrypoint"`
	Env     map[string]string `json:"env,omitempty" toml:"env"`
	Workdir string            `json:"workdir,omitempty" toml:"workdir"`
	// Args belongs to the earlier form (entrypoint = "cmd", args = [...]).
	Args []string `json:"-" toml:"args"`
}

// Entrypoint accepts both the array form and the earlier single string.
type Entrypoint []string

// UnmarshalTOML implements toml.Unmarshaler.
func (e *Entrypoint) UnmarshalTOML(v any) error {
	switch t := v.(type) {
	case string:
		*e = Entrypoint{t}
	case []any:
		out := make(Entrypoint, 0, len(t))
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("workload.entrypoint: every item must be a string, found %T", x)
			}
			out = append(out, s)
		}
		*e = out
	default:
		return fmt.Errorf("workload.entrypoint must be a string or an array of strings, found %T", v)
	}
	return nil
}

// HealthCheck says how Volant probes the workload.
type HealthCheck struct {
	Endpoint  string `json:"endpoint" toml:"endpoint"`
	TimeoutMS int    `json:"timeout_ms" toml:"timeout_ms"`
}

// Action is a named HTTP call on the workload.
type Action struct {
	Description string `json:"description,omitempty" toml:"description"`
	Method      string `json:"method" toml:"method"`
	Path        string `json:"path" toml:"path"`
	TimeoutMS   int    `json:"timeout_ms,omitempty" toml:"timeout_ms"`
}

// Initramfs points Volant at the artifact.
type Initramfs struct {
	URL      string `json:"url" toml:"url"`
	Checksum string `json:"checksum,omitempty" toml:"checksum"`
}

// Disk is an extra disk attached to the VM.
type Disk struct {
	Name     string `json:"name" toml:"name"`
	Source   string `json:"source" toml:"source"`
	Checksum string `json:"checksum,omitempty" toml:"checksum"`
	Format   string `json:"format,omitempty" toml:"format"`
	Readonly bool   `json:"readonly,omitempty" toml:"readonly"`
	Target   string `json:"target,omitempty" toml:"target"`
}

// CloudInit seeds cloud-init in the guest.
type CloudInit struct {
	Datasource    string        `json:"datasource,omitempty" toml:"datasource"`
	SeedMode      string        `json:"seed_mode,omitempty" toml:"seed_mode"`
	UserData      *CloudInitDoc `json:"user_data,omitempty" toml:"user_data"`
	MetaData      *CloudInitDoc `json:"meta_data,omitempty" toml:"meta_data"`
	NetworkConfig *CloudInitDoc `json:"network_config,omitempty" toml:"network_config"`
}

// CloudInitDoc is one cloud-init document, inline or by path.
type CloudInitDoc struct {
	Inline  bool   `json:"inline,omitempty" toml:"inline"`
	Content string `json:"content,omitempty" toml:"content"`
	Path    string `json:"path,omitempty" toml:"path"`
}

// Network is the VM's default networking.
type Network struct {
	Mode       string `json:"mode,omitempty" toml:"mode"`
	Subnet     string `json:"subnet,omitempty" toml:"subnet"`
	Gateway    string `json:"gateway,omitempty" toml:"gateway"`
	AutoAssign *bool  `json:"auto_assign,omitempty" toml:"auto_assign"`
	// Expose was part of the earlier manifest.toml; the v1 schema has no
	// place for it, so it is read and reported as dropped.
	Expose []map[string]any `json:"-" toml:"expose"`
}

// Devices lists host devices the VM may use.
type Devices struct {
	PCIPassthrough []string `json:"pci_passthrough,omitempty" toml:"pci_passthrough"`
	Allowlist      []string `json:"allowlist,omitempty" toml:"allowlist"`
}

// Defaults for fields the schema requires and a manifest.toml may omit.
const (
	DefaultWorkloadType = "http"
	DefaultBaseURL      = "http://127.0.0.1:8080"
	DefaultCPUCores     = 1
	DefaultMemoryMB     = 256
	DefaultVersion      = "0.1.0"
	SchemaVersion       = "v1"
)

// ManifestFacts are what the build knows and the manifest records.
type ManifestFacts struct {
	Name       string // default name and runtime
	Entrypoint []string
	Artifact   string // artifact file name, used as initramfs.url unless set
	SHA256     string // hex digest of the artifact
}

// LoadManifest reads an optional manifest.toml ("" means none). Warnings
// name earlier-format keys that the v1 schema cannot hold.
func LoadManifest(file string) (*Manifest, []string, error) {
	if file == "" {
		return &Manifest{}, nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("manifest %s not found", file)
		}
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	return decodeManifest(file, data)
}

// decodeManifest decodes data, the manifest.toml file, as LoadManifest.
func decodeManifest(file string, data []byte) (*Manifest, []string, error) {
	m := &Manifest{}
	md, err := toml.Decode(string(data), m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("%s:%d: %s", file, pe.Position.Line, pe.Message)
		}
		if p, ok := decodeProblem(err); ok {
			return nil, nil, fmt.Errorf("%s:%d: %s", file, p.Line, p.Msg)
		}
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		lines := newLocator(data)
		var msgs []string
		for _, k := range und {
			known, ok := manifestKeys(k[:len(k)-1])
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, lines.line(k), unknownKeyMsg(k, known, ok)))
		}
		return nil, nil, errors.New(strings.Join(msgs, "\n"))
	}
	var warn []string
	if m.Network != nil && len(m.Network.Expose) > 0 {
		warn = append(warn, fmt.Sprintf("%s: network.expose is not part of the v1 plugin manifest and was left out", file))
	}
	return m, warn, nil
}

// ReadManifest reads a manifest.toml, as LoadManifest does, or a
// NAME.manifest.json written by a build, told apart by content: a JSON
// manifest is an object, and no TOML document starts with "{".
func ReadManifest(file string) (*Manifest, []string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return LoadManifest(file)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return decodeManifest(file, data)
	}
	m := &Manifest{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, nil, fmt.Errorf("%s:%d: %s", file, lineAt(data, se.Offset), se)
		case errors.As(err, &te):
			return nil, nil, fmt.Errorf("%s:%d: %s: expected %s, found a JSON %s", file, lineAt(data, te.Offset), te.Field, te.Type, te.Value)
		}
		return nil, nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "json: "))
	}
	return m, nil, nil
}

// lineAt is the line of data that byte offset off is on, counting from 1.
func lineAt(data []byte, off int64) int {
	return bytes.Count(data[:min(off, int64(len(data)))], []byte("\n")) + 1
}

// manifestKeys lists the keys the table at path of a manifest.toml takes,
// read from the Manifest type's toml tags so that they cannot drift from
// what is decoded; ok is false where path is no table of known keys.
func manifestKeys(path []string) (keys []string, ok bool) {
	t := reflect.TypeOf(Manifest{})
	for i := 0; i < len(path); i++ {
		f, found := tomlField(t, path[i])
		if !found {
			return nil, false
		}
		t = f.Type
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() == reflect.Map { // the next part is the map's key
			i++
			t = t.Elem()
		}
	}
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys, true
}

// tomlField finds the field of struct type t whose toml tag is name.
func tomlField(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// Complete fills what the manifest leaves open from the build's facts and
// the documented defaults, and folds the earlier forms into the v1 shape.
func (m *Manifest) Complete(f ManifestFacts) {
	if m.SchemaVersion == "" {
		m.SchemaVersion = SchemaVersion
	}
	if m.Name == "" {
		m.Name = f.Name
	}
	if m.Version == "" {
		m.Version = DefaultVersion
	}
	if m.Runtime == "" {
		m.Runtime = m.Name
	}
	if m.Resources.CPUCores == 0 {
		m.Resources.CPUCores = DefaultCPUCores
	}
	if m.Resources.MemoryMB == 0 {
		m.Resources.MemoryMB = DefaultMemoryMB
	}
	w := &m.Workload
	if w.Type == "" {
		w.Type = DefaultWorkloadType
	}
	if w.BaseURL == "" {
		w.BaseURL = DefaultBaseURL
	}
	if len(w.Entry) == 0 {
		w.Entry = f.Entrypoint
	}
	w.Entry = append(w.Entry, w.Args...)
	w.Args = nil
	if len(m.LegacyEnv) > 0 {
		if w.Env == nil {
			w.Env = map[string]string{}
		}
		for k, v := range m.LegacyEnv {
			if _, set := w.Env[k]; !set {
				w.Env[k] = v
			}
		}
		m.LegacyEnv = nil
	}
	if m.Network != nil {
		m.Network.Expose = nil
	}
	if m.Initramfs == nil {
		m.Initramfs = &Initramfs{}
	}
	if m.Initramfs.URL == "" {
		// A relative URL reference: "my app.cpio.gz" is "my%20app.cpio.gz",
		// and a name with a colon gets "./" so it is no scheme.
		m.Initramfs.URL = (&url.URL{Path: f.Artifact}).String()
	}
	m.Initramfs.Checksum = "sha256:" + f.SHA256
}

// WriteJSON writes the manifest as indented JSON with sorted map keys.
func (m *Manifest) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(m)
}

// DefaultEntrypoint picks the workload's entrypoint when the manifest names
// none: the mapped executable in a bin directory (the plugin's program),
// else /init.
func DefaultEntrypoint(r *Recipe) []string {
	var bins []string
	for _, m := range r.Mappings {
		if dir := filepath.Base(filepath.Dir(m.Guest)); dir == "bin" || dir == "sbin" {
			bins = append(bins, m.Guest)
		}
	}
	sort.Strings(bins)
	if len(bins) > 0 {
		return []string{bins[0]}
	}
	return []string{"/init"}
}
