package overlay

import (
	"bytes"
	"io"
)

// appletTableStart is how BusyBox's applet name table begins: the names are
// one NUL-separated string sorted by strcmp, and "[" and "[[" sort first.
var appletTableStart = []byte("[\x00[[\x00")

const (
	scanChunk     = 1 << 20
	maxAppletList = 64 << 10 // far above the ~4 KiB of a full BusyBox
	minApplets    = 3
	// maxCandidates bounds the markers tried, so a file stuffed with them
	// cannot make the scan read 64 KiB for every few bytes it holds.
	maxCandidates = 16
)

// Applets returns the applets a BusyBox binary provides, read from its
// applet name table. The binary is never executed ("busybox --list"): a
// downloaded binary is untrusted input, and may be built for another
// architecture. When no valid table is found the binary is not a BusyBox
// we can read, and a fixed list of common applets is returned instead.
func Applets(bin io.ReaderAt, size int64) []string {
	if names := findAppletTable(bin, size); names != nil {
		return names
	}
	return append([]string(nil), fallbackApplets...)
}

// findAppletTable scans the binary in chunks that overlap by the marker's
// length, so a table starting across a chunk boundary is still found.
func findAppletTable(bin io.ReaderAt, size int64) []string {
	buf := make([]byte, scanChunk)
	overlap := int64(len(appletTableStart) - 1)
	tries := 0
	for off := int64(0); off < size; off += scanChunk - overlap {
		n, err := bin.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if err != nil && err != io.EOF {
			return nil
		}
		chunk := buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], appletTableStart)
			if j < 0 {
				break
			}
			if names := parseAppletTable(bin, off+int64(i+j), size); names != nil {
				return names
			}
			if tries++; tries == maxCandidates {
				return nil
			}
			i += j + 1
		}
		if int64(n) < scanChunk {
			break
		}
	}
	return nil
}

// parseAppletTable reads the table at off and returns its names, or nil
// when what follows the marker is not a well-formed table: every name
// valid, strictly sorted, ended by an empty string.
func parseAppletTable(bin io.ReaderAt, off, size int64) []string {
	buf := make([]byte, min(maxAppletList, size-off))
	n, err := bin.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return nil
	}
	var names []string
	for rest := buf[:n]; ; {
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			return nil
		}
		name := string(rest[:end])
		rest = rest[end+1:]
		if name == "" {
			break
		}
		if !validApplet(name) || len(names) > 0 && names[len(names)-1] >= name {
			return nil
		}
		names = append(names, name)
	}
	if len(names) < minApplets {
		return nil
	}
	return names
}

// fallbackApplets are linked when the binary's table cannot be read: the
// applets an initramfs shell session and its scripts commonly need, all
// present in any BusyBox built with the default configuration.
var fallbackApplets = []string{
	"[", "[[", "ash", "awk", "basename", "cat", "chmod", "chown", "cp", "cut",
	"date", "dd", "df", "dirname", "dmesg", "du", "echo", "env", "false",
	"find", "free", "grep", "gunzip", "gzip", "halt", "head", "hostname", "id",
	"ifconfig", "init", "insmod", "ip", "kill", "less", "ln", "ls", "lsmod",
	"mdev", "mkdir", "mknod", "modprobe", "more", "mount", "mv", "nc", "ping",
	"pivot_root", "poweroff", "printf", "ps", "pwd", "readlink", "reboot", "rm",
	"rmdir", "rmmod", "route", "sed", "seq", "sh", "sleep", "sort", "stat",
	"switch_root", "sync", "sysctl", "tail", "tar", "tee", "test", "touch",
	"tr", "true", "udhcpc", "umount", "uname", "vi", "wc", "wget", "which",
	"xargs",
}
