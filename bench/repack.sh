#!/usr/bin/env bash
# Measures re-packing with the piece cache, on a copy of a large tree
# (default: the Go source tree), all in one run:
#
#   base cold    the packer at BASE (default: origin of this branch, main)
#   cold         this packer, empty cache
#   warm         this packer, re-pack after writing a new 1 MiB file
#   gzip -9      of the same uncompressed archive, for the size
#
# and checks that the warm artifact is byte-identical to a cold pack of the
# changed tree and passes `gzip -t`.
#
#   bench/repack.sh [DIR]      RUNS=3 BASE=main bench/repack.sh
set -euo pipefail

src=${1:-$(go env GOROOT)/src}
runs=${RUNS:-3}
base=${BASE:-main}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for tool in gzip cp; do
	command -v "$tool" >/dev/null || { echo "repack.sh: $tool not found" >&2; exit 1; }
done
mkdir "$work/base"
git -C "$repo" archive "$base" | tar -x -C "$work/base"
(cd "$work/base" && go build -o "$work/packtree-base" ./bench/packtree)
(cd "$repo" && go build -o "$work/packtree" ./bench/packtree)
cp -a "$src" "$work/tree"
tree=$work/tree

. "$here/timed.sh"

basecold() { "$work/packtree-base" -o "$work/base.gz" "$tree"; }
cold() { rm -rf "$work/cold-cache"; "$work/packtree" -cache "$work/cold-cache" -o "$work/cold.gz" "$tree"; }
warm() { "$work/packtree" -cache "$work/cache" -o "$work/warm.gz" "$tree"; }
newfile() { head -c 786432 /dev/urandom | base64 -w 0 >"$tree/new-$1.txt"; } # 1 MiB of text

basecold # a warm page cache for everyone
warm     # fills the cache
b= c= w=
for ((i = 0; i < runs; i++)); do
	b=$(best "$b" "$(timed basecold)")
	c=$(best "$c" "$(timed cold)")
	newfile "$i"
	w=$(best "$w" "$(timed warm)")
done
cold
cmp "$work/warm.gz" "$work/cold.gz" || { echo "repack.sh: the warm re-pack differs from a cold pack of the same tree" >&2; exit 1; }
gzip -t "$work/warm.gz"
"$work/packtree" -compression none -o "$work/raw.cpio" "$tree"
gzip -9 -c "$work/raw.cpio" >"$work/gnu.gz"

awk -v b="$b" -v c="$c" -v w="$w" -v sw="$(stat -c %s "$work/warm.gz")" -v sg="$(stat -c %s "$work/gnu.gz")" \
	-v sb="$(stat -c %s "$work/base.gz")" -v n="$(find "$tree" | wc -l)" -v bytes="$(du -sb "$tree" | cut -f1)" \
	-v cores="$(nproc)" -v src="$src" -v runs="$runs" -v base="$base" 'BEGIN {
	printf "tree                 copy of %s (%d entries, %.0f MB, %d cores, best of %d)\n", src, n, bytes / 1e6, cores, runs
	printf "base cold (%s)     %7.3f s  %10d bytes\n", base, b, sb
	printf "cold, empty cache    %7.3f s  %10d bytes   %.3fx base\n", c, sw, c / b
	printf "warm, +1 MiB file    %7.3f s  identical   %.3fx cold\n", w, w / c
	printf "gzip -9 of the cpio             %10d bytes   size ratio %.4f\n", sg, sw / sg
}'
