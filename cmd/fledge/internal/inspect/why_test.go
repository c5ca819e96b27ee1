package inspect

import (
	"bytes"
	"strings"
	"testing"
)

func TestWhy(t *testing.T) {
	v := view(t,
		layer("rootfs", dir("/usr/bin", 0o755), file("/usr/bin/sh", 0o755, "dash"), file("/etc/gone/x", 0o644, "x")),
		layer("busybox", link("/bin", "usr/bin"), link("/bin/sh", "busybox"), file("/bin/busybox", 0o755, "bb")),
		layer("edits", whiteout("/etc/gone")),
	)
	cases := []struct {
		path string
		want []string
	}{
		{"/bin/sh", []string{
			"reached through /bin -> usr/bin (symlink from layer busybox)",
			"stored at /usr/bin/sh",
			"provided by layer busybox: symlink lrwxrwxrwx -> busybox",
			"resolves to /usr/bin/busybox: file from layer busybox",
			"shadows layer rootfs: file -rwxr-xr-x",
		}},
		{"/etc/gone/x", []string{"removed by a whiteout at /etc/gone in layer edits"}},
		{"/etc/never", []string{"no layer provides it"}},
		{"/dev/console", []string{"provided by layer skeleton: chardev crw-------", "shadows nothing"}},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		if err := WriteExplanation(&buf, Why(v, tc.path)); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("why %s lacks %q:\n%s", tc.path, w, buf.String())
			}
		}
	}
}
