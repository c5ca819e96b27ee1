package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// input is a Spec resolved against the host: absolute paths, the Dockerfile
// read once (the bytes hashed are the bytes built), named contexts parsed.
type input struct {
	dockerfile []byte
	filename   string // base name the frontend is told to read
	context    string // absolute directory; "" builds with an empty context
	target     string
	args       map[string]string
	image      string
	named      map[string]namedContext
}

func resolveSpec(s Spec) (input, error) {
	in := input{target: s.Target, args: s.BuildArgs, image: s.Image, filename: "Dockerfile"}
	switch {
	case s.Dockerfile != "" && s.Image != "":
		return in, fmt.Errorf("rootfs: both a Dockerfile (%s) and an image (%s) were given; expected one of them", s.Dockerfile, s.Image)
	case s.Image != "":
		if strings.ContainsAny(s.Image, " \t\r\n") {
			return in, fmt.Errorf("rootfs: image %q contains white space; expected a reference such as alpine:3.20", s.Image)
		}
		in.dockerfile = []byte("FROM " + s.Image + "\n")
		if s.Context != "" {
			return in, fmt.Errorf("rootfs: a context (%s) was given with an image; a context is only used with a Dockerfile", s.Context)
		}
	case s.Dockerfile != "":
		if err := in.readDockerfile(s); err != nil {
			return in, err
		}
	default:
		return in, fmt.Errorf("rootfs: neither a Dockerfile nor an image was given; expected one of them")
	}
	named, err := parseNamedContexts(s.NamedContexts)
	if err != nil {
		return in, err
	}
	in.named = named
	return in, nil
}

func (in *input) readDockerfile(s Spec) error {
	df, err := filepath.Abs(s.Dockerfile)
	if err != nil {
		return fmt.Errorf("rootfs: Dockerfile: %w", err)
	}
	b, err := os.ReadFile(df)
	if err != nil {
		return fmt.Errorf("rootfs: reading the Dockerfile: %w", err)
	}
	in.dockerfile, in.filename = b, filepath.Base(df)
	ctxDir := s.Context
	if ctxDir == "" {
		ctxDir = filepath.Dir(df)
	}
	if in.context, err = filepath.Abs(ctxDir); err != nil {
		return fmt.Errorf("rootfs: context: %w", err)
	}
	if fi, err := os.Stat(in.context); err != nil || !fi.IsDir() {
		return fmt.Errorf("rootfs: context %s is not a directory; expected the folder the Dockerfile's COPY reads from", in.context)
	}
	return nil
}

// sourceDateEpoch is the time every exported file gets: build steps stamp
// files with the wall clock, which would make each build differ from the
// last and an external daemon's result differ from the embedded one.
func sourceDateEpoch() (int64, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: expected a non-negative number of seconds since 1970", v)
	}
	return n, nil
}
