#!/usr/bin/env bash
# Bulk work through `fledge mount` against the host, in the same run: tar x
# of a large tree (default: the Go source tree), then cp -r and rm -rf of
# that tree, each on the host and in a mounted copy of examples/default.
# Then the workspace is packed and GNU cpio extracts it: the artifact must
# hold every file of the tree with the same content, mode and owner.
#
#   bench/mount-tar.sh [DIR]        RUNS=3 bench/mount-tar.sh   (best of 3 each)
#
# As root: mounting needs /dev/fuse.
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
(cd "$here/.." && go build -o "$work/fledge" ./cmd/fledge)
name=$(basename "$tree")
tar -C "$(dirname "$tree")" -cf "$work/tree.tar" "$name"
cp -r "$here/../examples/default" "$work/ws"
mkdir "$mnt" "$work/host"
export XDG_CACHE_HOME=$work/cache

start_mount "$work/ws" "$mnt" "$work/fledge" mount
mkdir "$mnt/bulk"

# shellcheck source=timed.sh
. "$here/timed.sh"

# Host first, then the mount, for each step; each run works in its own
# folders, so the mount's later runs also have the earlier runs' edits.
th= tm= ch= cm= rh= rm_=
for ((i = 0; i < runs; i++)); do
	mkdir "$work/host/$i" "$mnt/bulk/$i"
	th=$(best "$th" "$(timed tar -C "$work/host/$i" -xf "$work/tree.tar")")
	tm=$(best "$tm" "$(timed tar -C "$mnt/bulk/$i" -xf "$work/tree.tar")")
	ch=$(best "$ch" "$(timed cp -r "$work/host/$i/$name" "$work/host/$i/copy")")
	cm=$(best "$cm" "$(timed cp -r "$mnt/bulk/$i/$name" "$mnt/bulk/$i/copy")")
	rh=$(best "$rh" "$(timed rm -rf "$work/host/$i/copy")")
	rm_=$(best "$rm_" "$(timed rm -rf "$mnt/bulk/$i/copy")")
	rm -rf "$work/host/$i"
done

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
awk -v th="$th" -v tm="$tm" -v ch="$ch" -v cm="$cm" -v rh="$rh" -v rm="$rm_" -v n="$files" -v b="$bytes" \
	-v cores="$(nproc)" -v tree="$tree" -v runs="$runs" 'BEGIN {
	printf "tree      %s (%d entries, %.0f MB, %d cores, best of %d)\n", tree, n, b / 1e6, cores, runs
	printf "          host      mount     ratio\n"
	printf "tar x   %7.2f s %7.2f s %7.2fx  (target <= 3x)\n", th, tm, tm / th
	printf "cp -r   %7.2f s %7.2f s %7.2fx\n", ch, cm, cm / ch
	printf "rm -rf  %7.2f s %7.2f s %7.2fx\n", rh, rm, rm / rh
	printf "packed: every entry of the tree with the same type, mode, owner, link target and content\n"
}'
