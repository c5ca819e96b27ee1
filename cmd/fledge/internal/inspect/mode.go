package inspect

import (
	"io/fs"

	"github.com/volantvm/fledge/overlay"
)

var typeChars = map[overlay.Type]byte{
	overlay.Regular: '-', overlay.Dir: 'd', overlay.Symlink: 'l',
	overlay.CharDev: 'c', overlay.BlockDev: 'b', overlay.FIFO: 'p', overlay.Socket: 's',
}

// ModeString renders an entry's mode the way ls -l does ("drwxr-xr-x",
// "-rwsr-xr-x", "drwxrwxrwt"). Go's fs.FileMode.String uses its own letters
// for the special bits, which people reading a listing do not expect.
func ModeString(e *overlay.Entry) string {
	b := []byte("?rwxrwxrwx")
	if c, ok := typeChars[e.Type]; ok {
		b[0] = c
	}
	for i := 0; i < 9; i++ {
		if e.Perm&(1<<uint(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special(b, 3, e.Perm&fs.ModeSetuid != 0, 's')
	special(b, 6, e.Perm&fs.ModeSetgid != 0, 's')
	special(b, 9, e.Perm&fs.ModeSticky != 0, 't')
	return string(b)
}

// special puts a setuid, setgid or sticky letter over an execute position:
// lower case when the execute bit is also set, upper case when it is not.
func special(b []byte, at int, set bool, letter byte) {
	if !set {
		return
	}
	if b[at] == '-' {
		letter -= 'a' - 'A'
	}
	b[at] = letter
}

// OctalMode is the permission part of the stat(2) mode, setuid, setgid and
// sticky included ("0755", "4755").
func OctalMode(e *overlay.Entry) uint32 { return e.UnixMode() & 0o7777 }
