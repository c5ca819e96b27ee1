package overlay

import (
	"strings"
	"sync"
)

// The directories BusyBox's installer (busybox --install) puts applets in.
// The binary's applet table lists names only; the per-applet directory is
// kept in a separate packed table (only when the installer is compiled in)
// that has no marker to find it by without symbols. So the split is fixed
// here instead: these lists are what BusyBox 1.35 assigns (Debian's
// busybox-static --list-full, plus a few defconfig applets Debian leaves
// out). Putting an applet where BusyBox would matters for scripts with
// absolute paths, "#!/usr/bin/env" most of all. An applet not listed goes
// to /bin, which every PATH has.
var appletDirs = sync.OnceValue(func() map[string]string {
	dirs := map[string]string{}
	for dir, names := range map[string]string{
		"/sbin": `acpid adjtimex arp blkid blockdev depmod devmem fdisk findfs
			freeramdisk fsck fstrim getty halt hdparm hwclock ifconfig ifdown ifup
			init insmod ip ipneigh klogd loadkmap logread losetup lsmod mdev
			mkdosfs mke2fs mkfs.ext2 mkfs.vfat mkswap modinfo modprobe nameif
			pivot_root poweroff reboot rmmod route run-init start-stop-daemon
			sulogin swapoff swapon switch_root sysctl syslogd tc tunctl udhcpc
			uevent vconfig watchdog zcip`,
		"/usr/bin": `[ [[ ar ascii awk basename bc blkdiscard bunzip2 bzcat bzip2
			cal chvt clear cmp crc32 crontab cut dc deallocvt diff dirname
			dos2unix dpkg dpkg-deb du dumpleases env expand expr factor fallocate
			find fold free ftpget ftpput groups head hexdump hostid id killall
			last less logger logname lsscsi lzcat lzma md5sum microcom mkfifo
			mkpasswd nc nl nproc nsenter nslookup od openvt passwd paste patch
			printf realpath renice reset rpm2cpio seq setkeycodes setsid sha1sum
			sha256sum sha3sum sha512sum shred shuf sort ssl_client strings svc
			svok tac tail taskset tee telnet test tftp time timeout top tr
			traceroute traceroute6 truncate ts tty unexpand uniq unix2dos unlink
			unlzma unshare unxz unzip uptime uudecode uuencode w wc wget which
			who whoami xargs xxd xz xzcat yes`,
		"/usr/sbin": `arping brctl chroot crond dhcprelay fsfreeze httpd i2cdetect
			i2cdump i2cget i2cset i2ctransfer ifplugd inetd loadfont mim nologin
			ntpd partprobe rdate telnetd ubirename udhcpd`,
	} {
		for _, name := range strings.Fields(names) {
			dirs[name] = dir
		}
	}
	return dirs
})

// appletDir is the directory an applet's link goes in.
func appletDir(name string) string {
	if dir, ok := appletDirs()[name]; ok {
		return dir
	}
	return "/bin"
}
