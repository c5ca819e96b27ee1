#!/usr/bin/env bash
# Bulk work through `fledge mount` against the host, in the same run: tar x
# of a large tree (default: the Go source tree), then cp -r and rm -rf of
# that tree, each on the host, through go-fuse's own loopback file system
# (bench/loopback: the most any go-fuse file system can reach here, see
# there), and in a mounted copy of examples/default. Then the workspace is
# packed and GNU cpio extracts it: the artifact must hold every file of the
# tree with the same content, mode and owner.
#
#   bench/mount-tar.sh [DIR]        RUNS=3 bench/mount-tar.sh   (best of 3 each)
#
# As root: mounting needs /dev/fuse. All three work in one scratch folder
# (TMPDIR, else /tmp), so on one file system.
# Target: tar x through the mount at most 3x the host's time.
set -euo pipefail

tree=$(realpath "${1:-$(go env GOROOT)/src}")
runs=${RUNS:-1}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=mounted.sh
. "$here/mounted.sh"

for tool in tar cpio cp rm sha256sum; do
	command -v "$tool" >/dev/null || { echo "mount-tar.sh: $tool not found: install it (Debian: tar, cpio, coreutils)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "mount-tar.sh: run as root (fledge mount needs /dev/fuse)" >&2; exit 1; }
(cd "$here/.." && go build -o "$work/fledge" ./cmd/fledge && go build -o "$work/loopback" ./bench/loopback)
name=$(basename "$tree")
tar -C "$(dirname "$tree")" -cf "$work/tree.tar" "$name"
cp -r "$here/../examples/default" "$work/ws"
mkdir "$mnt" "$work/host" "$work/lower" "$work/loop"
export XDG_CACHE_HOME=$work/cache

start_mount "$work/ws" "$mnt" "$work/fledge" mount
mkdir "$mnt/bulk"
# With the runtime settings fledge mount picks for itself (serverRuntime).
procs=$(($(nproc) / 2))
start_mount "$work" "$work/loop" env GOMAXPROCS=$((procs > 1 ? procs : 1)) GOGC=400 "$work/loopback" "$work/lower"

# shellcheck source=timed.sh
. "$here/timed.sh"

# Host, loopback, mount, in turn for each step; each run works in its own
# folders, so the mount's later runs also have the earlier runs' edits.
th= tl= tm= ch= cl= cm= rh= rl= rm_=
for ((i = 0; i < runs; i++)); do
	mkdir "$work/host/$i" "$work/loop/$i" "$mnt/bulk/$i"
	th=$(best "$th" "$(timed tar -C "$work/host/$i" -xf "$work/tree.tar")")
	tl=$(best "$tl" "$(timed tar -C "$work/loop/$i" -xf "$work/tree.tar")")
	tm=$(best "$tm" "$(timed tar -C "$mnt/bulk/$i" -xf "$work/tree.tar")")
	ch=$(best "$ch" "$(timed cp -r "$work/host/$i/$name" "$work/host/$i/copy")")
	cl=$(best "$cl" "$(timed cp -r "$work/loop/$i/$name" "$work/loop/$i/copy")")
	cm=$(best "$cm" "$(timed cp -r "$mnt/bulk/$i/$name" "$mnt/bulk/$i/copy")")
	rh=$(best "$rh" "$(timed rm -rf "$work/host/$i/copy")")
	rl=$(best "$rl" "$(timed rm -rf "$work/loop/$i/copy")")
	rm_=$(best "$rm_" "$(timed rm -rf "$mnt/bulk/$i/copy")")
	rm -rf "$work/host/$i" "$work/loop/$i"
done

stop_mount "$work/loop"
stop_mount "$mnt"
(cd "$work/ws" && "$work/fledge" pack --compression none -o "$work/img.cpio" >/dev/null)
mkdir "$work/x"
(cd "$work/x" && cpio -idm --quiet --no-absolute-filenames <"$work/img.cpio")

# listing DIR prints each entry's path, type, mode, owner and, for a file,
# content hash; symlinks their target.
listing() {
	(cd "$1" && find . -printf '%p %y %m %U:%G %l\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
for ((i = 0; i < runs; i++)); do
	if ! diff <(listing "$tree") <(listing "$work/x/bulk/$i/$name") >"$work/diff"; then
		echo "mount-tar.sh: the packed tree of run $i differs from $tree (< original, > packed):" >&2
		head -40 "$work/diff" >&2
		exit 1
	fi
	[[ ! -e $work/x/bulk/$i/copy ]] || { echo "mount-tar.sh: the removed copy of run $i is still packed" >&2; exit 1; }
done

files=$(find "$tree" | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
awk -v th="$th" -v tl="$tl" -v tm="$tm" -v ch="$ch" -v cl="$cl" -v cm="$cm" -v rh="$rh" -v rl="$rl" -v rm="$rm_" \
	-v n="$files" -v b="$bytes" -v cores="$(nproc)" -v tree="$tree" -v runs="$runs" '
function row(what, h, l, m) {
	printf "%-7s %7.2f s %7.2f s %7.2f s %9.2fx %9.2fx %9.2fx\n", what, h, l, m, l / h, m / h, m / l
}
BEGIN {
	printf "tree      %s (%d entries, %.0f MB, %d cores, best of %d)\n", tree, n, b / 1e6, cores, runs
	printf "          host  loopback     mount  loop/host mount/host mount/loop\n"
	row("tar x", th, tl, tm)
	row("cp -r", ch, cl, cm)
	row("rm -rf", rh, rl, rm)
	printf "target: tar x mount/host <= 3x\n"
	printf "packed: every entry of the tree with the same type, mode, owner, link target and content\n"
}'
