#!/bin/sh
# Writes, in the current folder, the two archives of an initrd laid out as
# distributions ship them, with GNU cpio: early.cpio (the AMD microcode, to
# stay uncompressed in front) and main.cpio (to be compressed), whose /init
# runs /scripts/hello and reports on files the re-pack tests edit. $1 is a
# static BusyBox. Used by packer/repack_test.go and cmd/fledge's artifact
# tests.
set -eu
mkdir -p early/kernel/x86/microcode main/bin main/etc main/scripts main/dev
head -c 4000 /dev/zero | tr '\0' u > early/kernel/x86/microcode/AuthenticAMD.bin
cp "$1" main/bin/busybox
ln -s busybox main/bin/sh
printf '#!/bin/sh\n/scripts/hello\necho gone: $(/bin/busybox ls /etc/gone 2>&1)\necho motd: $(/bin/busybox stat -c %%a /etc/motd)\necho new: $(/bin/busybox cat /new/file)\n/bin/busybox poweroff -f\n' > main/init
printf '#!/bin/sh\necho hello from the initrd\n' > main/scripts/hello
chmod 755 main/init main/scripts/hello
echo motd > main/etc/motd
echo a > main/etc/a
ln main/etc/a main/etc/a2
echo gone > main/etc/gone
mknod main/dev/console c 5 1
chown 1000:100 main/etc/a
touch -h -d @1600000000 early/kernel/x86/microcode/AuthenticAMD.bin main/etc/* main/scripts/* main/init main/bin/*
(cd early && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > early.cpio
(cd main && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > main.cpio
