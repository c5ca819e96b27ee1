package recipe

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/BurntSushi/toml"
)

// recipeDir makes a folder with the files recipes in these tests refer to.
func recipeDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, f := range []string{"app", "my-init", "kestrel", "init", "Dockerfile", "tree/x"} {
		p := filepath.Join(d, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func parse(t *testing.T, dir, text string) (*Recipe, error) {
	t.Helper()
	return Parse(filepath.Join(dir, "fledge.toml"), []byte(text))
}

const head = "version = \"1\"\nstrategy = \"initramfs\"\n"

func TestValidationRules(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // substring of the error, with its line
	}{
		{"version missing", `strategy = "initramfs"`, `fledge.toml: version is required`},
		{"version wrong", "version = \"2\"\nstrategy = \"initramfs\"", `fledge.toml:1: version "2" is not supported`},
		{"strategy missing", `version = "1"`, `strategy is required`},
		{"oci_rootfs unsupported", "version = \"1\"\nstrategy = \"oci_rootfs\"", `fledge.toml:2: strategy "oci_rootfs" is not supported`},
		{"strategy unknown", "version = \"1\"\nstrategy = \"disk\"", `fledge.toml:2: strategy "disk" is unknown`},
		{"init path and none", head + "[init]\npath = \"./my-init\"\nnone = true\n[mappings]\n\"./init\" = \"/init\"", `fledge.toml:3: [init] takes either path (custom init) or none = true`},
		{"agent with custom init", head + "[init]\npath = \"./my-init\"\n[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"", `fledge.toml:5: agent not allowed with custom/none init`},
		{"agent with none init", head + "[init]\nnone = true\n[agent]\nsource_strategy = \"release\"\nversion = \"latest\"\n[mappings]\n\"./init\" = \"/init\"", `fledge.toml:5: agent not allowed with custom/none init`},
		{"custom init missing", head + "[init]\npath = \"./nope\"", `fledge.toml:4: init.path: ` + "DIR" + `/nope does not exist`},
		{"custom init is a dir", head + "[init]\npath = \"./tree\"", `init.path: DIR/tree is a directory, expected a file`},
		{"none without /init", head + "[init]\nnone = true", `fledge.toml:4: init.none = true needs a mapping that places your binary at /init`},
		{"release without version", head + "[agent]\nsource_strategy = \"release\"", `fledge.toml:4: agent.version is required with source_strategy = "release"`},
		{"local without path", head + "[agent]\nsource_strategy = \"local\"", `fledge.toml:4: agent.path is required with source_strategy = "local"`},
		{"local path missing", head + "[agent]\nsource_strategy = \"local\"\npath = \"./gone\"", `fledge.toml:5: agent.path: DIR/gone does not exist`},
		{"http without url", head + "[agent]\nsource_strategy = \"http\"", `fledge.toml:4: agent.url is required with source_strategy = "http"`},
		{"http bad url", head + "[agent]\nsource_strategy = \"http\"\nurl = \"ftp://x\"", `fledge.toml:5: agent.url "ftp://x" must be an http://, https:// or file:// URL`},
		{"http bad checksum", head + "[agent]\nsource_strategy = \"http\"\nurl = \"https://x/k\"\nchecksum = \"md5:abc\"", `fledge.toml:6: agent.checksum "md5:abc" must be "sha256:" followed by 64 hex digits`},
		{"strategy typo", head + "[agent]\nsource_strategy = \"relase\"\nversion = \"v1\"", `agent.source_strategy "relase" is unknown; use "release", "local" or "http" (did you mean "release"?)`},
		{"agent without strategy", head + "[agent]\nversion = \"v1\"", `fledge.toml:3: agent.source_strategy is required`},
		{"mapping relative destination", head + "[mappings]\n\"./app\" = \"usr/bin/app\"", `fledge.toml:4: mapping "./app": destination "usr/bin/app" must be an absolute guest path`},
		{"mapping dotdot destination", head + "[mappings]\n\"./app\" = \"/usr/../etc/app\"", `fledge.toml:4: mapping "./app": destination "/usr/../etc/app" must not contain ".."`},
		{"mapping source missing", head + "[mappings]\n\"./missing\" = \"/usr/bin/m\"", `fledge.toml:4: mapping "./missing": source DIR/missing does not exist`},
		{"mapping source escapes", head + "[mappings]\n\"../../etc/passwd\" = \"/p\"", `mapping "../../etc/passwd": "../../etc/passwd" leads outside the recipe folder`},
		{"mapping duplicate destination", head + "[mappings]\n\"./app\" = \"/x\"\n\"./tree\" = \"/x/\"", `both place /x`},
		{"mapping duplicate destination in a folder", head + "[mappings]\n\"./app\" = \"/usr/bin/\"\n\"./tree/../app\" = \"/usr/bin/app\"", `both place /usr/bin/app`},
		{"dockerfile and image", head + "[source]\ndockerfile = \"./Dockerfile\"\nimage = \"alpine:3.20\"", `fledge.toml:5: source.dockerfile and source.image cannot be used together`},
		{"dockerfile missing", head + "[source]\ndockerfile = \"./Nope\"", `fledge.toml:4: source.dockerfile: DIR/Nope does not exist`},
		{"context without dockerfile", head + "[source]\ncontext = \".\"", `source.context needs source.dockerfile`},
		{"busybox sha malformed", head + "[source]\nbusybox_url = \"file:///x\"\nbusybox_sha256 = \"abc\"", `fledge.toml:5: source.busybox_sha256 "abc" must be 64 hex digits`},
		{"host_libraries misspelt", head + "[source]\nhost_librarys = false", `did you mean "host_libraries"`},
		{"busybox off but url", head + "[source]\nbusybox = false\nbusybox_url = \"file:///x\"", `source.busybox = false leaves BusyBox out, but source.busybox_url names one`},
		{"unknown top key with hint", head + "mapings = 1", `fledge.toml:3: unknown key "mapings" at the top level; did you mean "mappings"?`},
		{"unknown agent key with hint", head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\nchecksm = \"x\"", `fledge.toml:6: unknown key "checksm" in [agent]; did you mean "checksum"?`},
		{"unknown source key without hint", head + "[source]\nzzzzzz = 1", `unknown key "zzzzzz" in [source]; known keys: busybox_url`},
		{"output compression unknown", head + "[output]\ncompression = \"lzo\"", `fledge.toml:4: output.compression "lzo" is unknown; use one of gzip, zstd, xz, lz4, none`},
		{"output key typo", head + "[output]\ncompresion = \"lz4\"", `unknown key "compresion" in [output]; did you mean "compression"?`},
		{"kernel without path", head + "[kernel]\nmodules = [\"virtio_net\"]", `fledge.toml:3: kernel.path is required`},
		{"kernel path missing", head + "[kernel]\npath = \"./kernel\"", `fledge.toml:4: kernel.path: DIR/kernel does not exist`},
		{"kernel path a file", head + "[kernel]\npath = \"./app\"", `kernel.path: DIR/app is not a directory`},
		{"kernel version a path", head + "[kernel]\npath = \"./tree\"\nversion = \"../x\"", `fledge.toml:5: kernel.version "../x" must be the name of a folder in lib/modules`},
		{"kernel module a path", head + "[kernel]\npath = \"./tree\"\nmodules = [\"a/b.ko\"]", `fledge.toml:5: kernel.modules: "a/b.ko" is not a module name`},
		{"kernel key typo", head + "[kernel]\npath = \"./tree\"\nmodule = []", `unknown key "module" in [kernel]; did you mean "modules"?`},
		{"syntax error has a line", head + "agent = = 1\n", `fledge.toml:3: `},
		{"mapping a device", head + "[mappings]\n\"/dev/null\" = \"/null\"", `fledge.toml:4: mapping "/dev/null": /dev/null is a character device; map regular files, folders, symlinks or FIFOs`},
		{"busybox_url scheme", head + "[source]\nbusybox_url = \"ftp://x/busybox\"", `fledge.toml:4: source.busybox_url "ftp://x/busybox": use an https://, http:// or file:// URL, or the path of a file`},
		{"cache without rootfs", head + "[source]\ncache_to = [\"type=local,dest=c\"]", `fledge.toml:4: source.cache_to shares the build cache of BuildKit, which builds only a source.dockerfile or source.image rootfs`},
		{"cache syntax", head + "[source]\ndockerfile = \"./Dockerfile\"\ncache_from = [\"type=registry,\\\"ref\"]", `fledge.toml:5: source.cache_from "type=registry,\"ref": `},
		{"cache local escapes", head + "[source]\ndockerfile = \"./Dockerfile\"\ncache_to = [\"type=local,dest=../../x\"]", `fledge.toml:5: source.cache_to "type=local,dest=../../x": dest: "../../x" leads outside the recipe folder`},
		{"cache local without folder", head + "[source]\ndockerfile = \"./Dockerfile\"\ncache_from = [\"type=local\"]", `fledge.toml:5: source.cache_from "type=local": type=local needs src=`},
		{"busybox_url path missing", head + "[source]\nbusybox_url = \"./nope\"", `fledge.toml:4: source.busybox_url: DIR/nope does not exist`},
		{"base and dockerfile", head + "[source]\ndockerfile = \"./Dockerfile\"\ninitramfs = \"./app\"", `fledge.toml:5: source.initramfs and source.dockerfile cannot be used together: both are the bottom image layer`},
		{"base and image", head + "[source]\ninitramfs = \"./app\"\nimage = \"alpine:3.20\"", `fledge.toml:4: source.initramfs and source.image cannot be used together`},
		{"base missing", head + "[source]\ninitramfs = \"./base.cpio.gz\"", `fledge.toml:4: source.initramfs: DIR/base.cpio.gz does not exist`},
		{"base is a folder", head + "[source]\ninitramfs = \"./tree\"", `fledge.toml:4: source.initramfs: DIR/tree is a directory, expected a file`},
		{"base escapes", head + "[source]\ninitramfs = \"../base.cpio.gz\"", `source.initramfs: "../base.cpio.gz" leads outside the recipe folder`},
		{"base misspelt", head + "[source]\ninitrmfs = \"./app\"", `did you mean "initramfs"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := recipeDir(t)
			_, err := parse(t, dir, tt.text)
			if err == nil {
				t.Fatal("recipe accepted")
			}
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}

func TestAllProblemsReportedTogether(t *testing.T) {
	dir := recipeDir(t)
	_, err := parse(t, dir, "version = \"3\"\nstrategy = \"x\"\n[mappings]\n\"./app\" = \"rel\"\n")
	if err == nil {
		t.Fatal("accepted")
	}
	if n := len(err.(*Error).Problems); n != 3 {
		t.Errorf("%d problems reported, want 3:\n%v", n, err)
	}
}

func TestHostLibrariesOptOut(t *testing.T) {
	dir := recipeDir(t)
	for text, want := range map[string]bool{
		head:                                     true,
		head + "[source]\nhost_libraries = true": true,
		head + "[source]\nhost_libraries = false": false,
	} {
		r, err := parse(t, dir, text)
		if err != nil {
			t.Fatalf("%s\n%v", text, err)
		}
		if r.WantsHostLibraries() != want {
			t.Errorf("%q: WantsHostLibraries() = %v, want %v", text, r.WantsHostLibraries(), want)
		}
	}
}

func TestModesAndDefaults(t *testing.T) {
	dir := recipeDir(t)
	tests := []struct {
		text      string
		mode      Mode
		agent     string
		busybox   bool
		busyboxOK string
	}{
		{head, ModeDefault, "release/latest", true, DefaultBusyBoxURL},
		{head + "[init]\n", ModeDefault, "release/latest", true, DefaultBusyBoxURL},
		{head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\n[source]\nbusybox_url = \"file:///usr/bin/busybox\"", ModeDefault, "local/", true, "file:///usr/bin/busybox"},
		{head + "[init]\npath = \"./my-init\"", ModeCustom, "", true, DefaultBusyBoxURL},
		{head + "[init]\nnone = true\n[mappings]\n\"./init\" = \"/init\"\n[source]\nbusybox = false", ModeNone, "", false, DefaultBusyBoxURL},
		{head + "[init]\nnone = true\n[mappings]\n\"./tree\" = \"/\"\n\"./init\" = \"/init\"", ModeNone, "", true, DefaultBusyBoxURL},
		// A base initramfs may bring /init, as a rootfs may: only the
		// built image tells (fledge check).
		{head + "[init]\nnone = true\n[source]\ninitramfs = \"./app\"", ModeNone, "", true, DefaultBusyBoxURL},
	}
	for _, tt := range tests {
		r, err := parse(t, dir, tt.text)
		if err != nil {
			t.Fatalf("%s\n%v", tt.text, err)
		}
		agent := ""
		if r.Agent != nil {
			agent = r.Agent.SourceStrategy + "/" + r.Agent.Version
		}
		if r.Mode() != tt.mode || agent != tt.agent || r.WantsBusyBox() != tt.busybox || r.Source.BusyBoxURL != tt.busyboxOK {
			t.Errorf("%s\n→ mode %s agent %q busybox %v %s", tt.text, r.Mode(), agent, r.WantsBusyBox(), r.Source.BusyBoxURL)
		}
	}
}

// TestPathsResolveAgainstRecipeFolder proves the working directory plays no
// part: the recipe is loaded from elsewhere by a relative path.
func TestPathsResolveAgainstRecipeFolder(t *testing.T) {
	dir := recipeDir(t)
	text := head + "[agent]\nsource_strategy = \"local\"\npath = \"kestrel\"\n[mappings]\n\"app\" = \"/usr/bin/app\"\n\"./tree\" = \"/opt/tree\"\n"
	if err := os.WriteFile(filepath.Join(dir, "fledge.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	rel, err := filepath.Rel(mustGetwd(t), filepath.Join(dir, "fledge.toml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(rel)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings[0].Host != filepath.Join(dir, "tree") || r.Mappings[1].Host != filepath.Join(dir, "app") {
		t.Errorf("mappings %+v not resolved against %s", r.Mappings, dir)
	}
	if r.HostPath(r.Agent.Path) != filepath.Join(dir, "kestrel") {
		t.Errorf("agent path %s", r.HostPath(r.Agent.Path))
	}
}

// A destination ending in "/" is a folder, as in a Dockerfile's COPY: a
// file lands in it under its own name, and a folder's contents merge into
// it.
func TestMappingIntoAFolder(t *testing.T) {
	dir := recipeDir(t)
	r, err := parse(t, dir, head+"[mappings]\n\"./app\" = \"/usr/bin/\"\n\"./my-init\" = \"/\"\n\"./tree\" = \"/opt/tree/\"\n\"kestrel\" = \"/usr/bin/agent\"\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/my-init": "my-init", "/opt/tree": "tree", "/usr/bin/agent": "kestrel", "/usr/bin/app": "app"}
	for _, m := range r.Mappings {
		if h, ok := want[m.Guest]; !ok || m.Host != filepath.Join(dir, h) {
			t.Errorf("mapping %s -> %s, want the guest paths %v", m.Host, m.Guest, want)
		}
	}
	if len(r.Mappings) != len(want) {
		t.Errorf("mappings %+v, want %v", r.Mappings, want)
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestEarlierRecipesKeepWorking(t *testing.T) {
	dir := recipeDir(t)
	// The shape the earlier fledge documented, including keys this fledge
	// gives no meaning to in initramfs builds.
	text := `version = "1"
strategy = "initramfs"

[agent]
source_strategy = "http"
url = "https://example.invalid/kestrel"
checksum = "sha256:6e123e7f3202a8c1e9b1f94d8941580a25135382b99e8d3e34fb858bba311348"

[source]
busybox_url = "https://busybox.net/downloads/binaries/1.35.0-x86_64-linux-musl/busybox"
busybox_sha256 = "6e123e7f3202a8c1e9b1f94d8941580a25135382b99e8d3e34fb858bba311348"

[mappings]
"./app" = "/usr/local/bin/app"
"./tree" = "/srv"
`
	if _, err := parse(t, dir, text); err != nil {
		t.Fatal(err)
	}
}

func TestNamedContextsResolveAgainstRecipeFolder(t *testing.T) {
	dir := recipeDir(t)
	os.MkdirAll(filepath.Join(dir, "layout"), 0o755)
	digest := "sha256:" + strings.Repeat("a", 64)
	text := head + "[source]\ndockerfile = \"./Dockerfile\"\n[source.contexts]\nbase = \"oci-layout://./layout@" + digest + "\"\nfiles = \"tree\"\nimg = \"docker-image://alpine:3.20\"\n"
	r, err := parse(t, dir, text)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"base":  "oci-layout://" + filepath.Join(dir, "layout") + "@" + digest,
		"files": filepath.Join(dir, "tree"),
		"img":   "docker-image://alpine:3.20",
	}
	for k, w := range want {
		if r.Source.Contexts[k] != w {
			t.Errorf("contexts.%s = %q, want %q", k, r.Source.Contexts[k], w)
		}
	}
	_, err = parse(t, dir, head+"[source]\ndockerfile = \"./Dockerfile\"\n[source.contexts]\nx = \"../../etc\"\n")
	if err == nil || !strings.Contains(err.Error(), "leads outside the recipe folder") {
		t.Errorf("escaping context accepted: %v", err)
	}
	_, err = parse(t, dir, head+"[source]\ndockerfile = \"./Dockerfile\"\n[source.contexts]\nx = \"./app\"\n")
	if err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("file as context accepted: %v", err)
	}
}

func TestCacheFoldersResolveAgainstRecipeFolder(t *testing.T) {
	dir := recipeDir(t)
	r, err := parse(t, dir, head+"[source]\ndockerfile = \"./Dockerfile\"\ncache_from = [\"type=local,src=cache\", \"type=registry,ref=127.0.0.1:5000/c\"]\ncache_to = [\"type=local,dest=/srv/cache,mode=max\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	from, to := r.Source.cacheFrom, r.Source.cacheTo
	if len(from) != 2 || from[0].Type != "local" || from[0].Attrs["src"] != filepath.Join(dir, "cache") || from[1].Type != "registry" || from[1].Attrs["ref"] != "127.0.0.1:5000/c" {
		t.Errorf("cache_from parsed as %+v", from)
	}
	if len(to) != 1 || to[0].Attrs["dest"] != "/srv/cache" || to[0].Attrs["mode"] != "max" {
		t.Errorf("cache_to parsed as %+v", to)
	}
}

// A folder given as the recipe is the commonest slip ("fledge check
// examples/default"); the message names the file to give instead.
func TestLoadFolderNamesTheRecipeFile(t *testing.T) {
	dir := recipeDir(t)
	_, err := Load(dir)
	want := filepath.Join(dir, "fledge.toml")
	if err == nil || !strings.Contains(err.Error(), "is a folder") || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load(%s) = %v; want a message naming %s", dir, err, want)
	}
}

// A value of the wrong TOML type is reported like every other problem:
// file and line, the key, what was expected and what was found.
func TestWrongTypeIsExplained(t *testing.T) {
	dir := recipeDir(t)
	cases := []struct{ text, want string }{
		{"version = 1\nstrategy = \"initramfs\"", `fledge.toml:1: version: expected a string, found an integer`},
		{head + "[init]\nnone = \"yes\"\n[mappings]\n\"./init\" = \"/init\"", `fledge.toml:4: init.none: expected a boolean (true or false), found a string`},
		{head + "[mappings]\n\"./app\" = 5", `fledge.toml:4: mappings."./app": expected a string, found an integer`},
		{head + "agent = \"local\"", `fledge.toml:3: agent: expected a table, found a string`},
		{head + "[source]\nhost_libraries = \"no\"", `fledge.toml:4: source.host_libraries: expected a boolean (true or false), found a string`},
	}
	for _, tc := range cases {
		_, err := parse(t, dir, tc.text)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), dir+"/", ""), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

// init.path, agent.path, source.dockerfile and source.initramfs are read whole; a FIFO
// there would block the build forever, a device would never end.
func TestHostFilesMustBeRegular(t *testing.T) {
	dir := recipeDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []string{
		head + "[init]\npath = \"./fifo\"",
		head + "[agent]\nsource_strategy = \"local\"\npath = \"./fifo\"",
		head + "[agent]\nsource_strategy = \"local\"\npath = \"/dev/zero\"",
		head + "[source]\ndockerfile = \"./fifo\"",
		head + "[source]\ninitramfs = \"./fifo\"",
	}
	for _, text := range cases {
		_, err := parse(t, dir, text)
		if err == nil || !strings.Contains(err.Error(), "expected a regular file") {
			t.Errorf("%q: err = %v; want a refusal saying a regular file is expected", text, err)
		}
	}
}

// TestOutputCompressionInSchemaAndRecipe: [output] compression is read,
// and the recipe schema kept in testdata takes the same values and no
// others.
func TestOutputCompressionInSchemaAndRecipe(t *testing.T) {
	s := schema(t, "fledge-toml-v1.json")
	for _, c := range append(slices.Clone(Compressions), "lzo") {
		text := head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\n[source]\nbusybox_url = \"file:///bin/busybox\"\n[output]\ncompression = \"" + c + "\"\n"
		r, err := parse(t, recipeDir(t), text)
		var doc map[string]any
		if _, derr := toml.Decode(text, &doc); derr != nil {
			t.Fatal(derr)
		}
		serr := s.Validate(doc)
		if known := slices.Contains(Compressions, c); known != (err == nil) || known != (serr == nil) {
			t.Errorf("compression %q: recipe error %v, schema error %v", c, err, serr)
		} else if known && r.Output.Compression != c {
			t.Errorf("compression %q read as %q", c, r.Output.Compression)
		}
	}
}

// TestBaseInSchemaAndRecipe: source.initramfs is read, and the recipe
// schema kept in testdata accepts and refuses the same uses of it.
func TestBaseInSchemaAndRecipe(t *testing.T) {
	s := schema(t, "fledge-toml-v1.json")
	dir := recipeDir(t)
	for source, ok := range map[string]bool{
		`initramfs = "./app"`: true,
		`initramfs = "./app"` + "\ndockerfile = \"./Dockerfile\"": false,
		`initramfs = "./app"` + "\nimage = \"alpine:3.20\"":       false,
		`initramfs = 5`: false,
	} {
		text := head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\n[source]\nbusybox_url = \"file:///bin/busybox\"\n" + source + "\n"
		r, err := parse(t, dir, text)
		var doc map[string]any
		if _, derr := toml.Decode(text, &doc); derr != nil {
			t.Fatal(derr)
		}
		serr := s.Validate(doc)
		if ok != (err == nil) || ok != (serr == nil) {
			t.Errorf("%s: recipe error %v, schema error %v; want accepted = %v", source, err, serr, ok)
		} else if ok && r.Source.Initramfs != "./app" {
			t.Errorf("%s: read as %q", source, r.Source.Initramfs)
		}
	}
}

func TestIsRecipeTellsARecipeFromADockerfile(t *testing.T) {
	for text, want := range map[string]bool{
		head:                          true,
		"# a recipe\n" + head:         true,
		"FROM scratch\nCOPY x /x\n":   false,
		"# syntax=x\nFROM alpine\n":   false,
		"ARG V=1\nFROM alpine:$V\n":   false,
		"":                            false,
		"# only a comment\n":          false,
		"from scratch\nrun echo hi\n": false,
	} {
		if got := IsRecipe([]byte(text)); got != want {
			t.Errorf("IsRecipe(%q) = %v, want %v", text, got, want)
		}
	}
}

// TestBusyBoxURLMayBeAPath: a busybox_url without a scheme is a file,
// absolute or relative to the recipe, read as a file:// URL.
func TestBusyBoxURLMayBeAPath(t *testing.T) {
	dir := recipeDir(t)
	for given, want := range map[string]string{"/usr/bin/busybox": "file:///usr/bin/busybox", "./app": "file://" + filepath.Join(dir, "app")} {
		r, err := parse(t, dir, head+"[source]\nbusybox_url = \""+given+"\"\n")
		if err != nil {
			t.Fatalf("busybox_url = %q: %v", given, err)
		}
		if r.Source.BusyBoxURL != want {
			t.Errorf("busybox_url = %q: read as %q, want %q", given, r.Source.BusyBoxURL, want)
		}
	}
}

// TestKernelInSchemaAndRecipe: [kernel] is read with its path resolved
// against the recipe's folder, and the schema kept in testdata takes it.
func TestKernelInSchemaAndRecipe(t *testing.T) {
	dir := recipeDir(t)
	text := head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\n[source]\nbusybox_url = \"file:///bin/busybox\"\n[kernel]\npath = \"./tree\"\nversion = \"6.1.0-28-amd64\"\nmodules = [\"virtio_pci\", \"virtio-net\"]\n"
	r, err := parse(t, dir, text)
	if err != nil {
		t.Fatal(err)
	}
	want := Kernel{Path: filepath.Join(dir, "tree"), Version: "6.1.0-28-amd64", Modules: []string{"virtio_pci", "virtio-net"}}
	if r.Kernel == nil || r.Kernel.Path != want.Path || r.Kernel.Version != want.Version || !slices.Equal(r.Kernel.Modules, want.Modules) {
		t.Errorf("got %+v, want %+v", r.Kernel, want)
	}
	s := schema(t, "fledge-toml-v1.json")
	agent := head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\n[source]\nbusybox_url = \"file:///bin/busybox\"\n"
	for doc, ok := range map[string]bool{
		text:                                    true,
		agent + "[kernel]\npath = \"/\"\n":      true,
		agent + "[kernel]\nmodules = [\"x\"]\n": false,
		agent + "[kernel]\npath = \"/\"\nmodules = [\"a/b\"]\n": false,
		agent + "[kernel]\npath = \"/\"\nextra = 1\n":           false,
	} {
		var d map[string]any
		if _, err := toml.Decode(doc, &d); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(d); (err == nil) != ok {
			t.Errorf("schema on %q: %v, want valid %v", doc, err, ok)
		}
	}
}

// TestCacheKeysInSchemaAndRecipe: source.cache_from and cache_to are
// lists of strings to the recipe schema kept in testdata and to fledge.
func TestCacheKeysInSchemaAndRecipe(t *testing.T) {
	s := schema(t, "fledge-toml-v1.json")
	for value, ok := range map[string]bool{`["type=local,src=c"]`: true, `"type=local,src=c"`: false, `[""]`: false} {
		text := head + "[agent]\nsource_strategy = \"local\"\npath = \"./kestrel\"\n[source]\nbusybox_url = \"file:///bin/busybox\"\ndockerfile = \"./Dockerfile\"\ncache_from = " + value + "\n"
		_, err := parse(t, recipeDir(t), text)
		var doc map[string]any
		if _, derr := toml.Decode(text, &doc); derr != nil {
			t.Fatal(derr)
		}
		if serr := s.Validate(doc); ok != (err == nil) || ok != (serr == nil) {
			t.Errorf("cache_from = %s: recipe error %v, schema error %v; want both to %s", value, err, serr, map[bool]string{true: "accept", false: "refuse"}[ok])
		}
	}
}
