#!/usr/bin/env bash
# Packs a large tree (default: the Go source tree) with fledge's packer and
# with `find . | cpio -o -H newc | gzip -9`, in the same run, and prints
# both times, the time ratio and the size ratio.
#
#   bench/pack.sh [DIR]        RUNS=3 bench/pack.sh   (best of 3 each)
#
# Each pipeline runs once untimed first, so both read a warm page cache.
set -euo pipefail

tree=${1:-$(go env GOROOT)/src}
runs=${RUNS:-1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for tool in cpio gzip find; do
	command -v "$tool" >/dev/null || { echo "pack.sh: $tool not found: install it (Debian: cpio, gzip, findutils)" >&2; exit 1; }
done
(cd "$here/.." && go build -o "$work/packtree" ./bench/packtree)

fledge() { "$work/packtree" -o "$work/fledge.cpio.gz" "$tree"; }
gnu() { (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -9 >"$work/gnu.cpio.gz"); }

# shellcheck source=timed.sh
. "$here/timed.sh"

fledge
gnu
best_f= best_g=
for ((i = 0; i < runs; i++)); do
	f=$(timed fledge)
	g=$(timed gnu)
	best_f=$(best "$best_f" "$f")
	best_g=$(best "$best_g" "$g")
done

size_f=$(stat -c %s "$work/fledge.cpio.gz")
size_g=$(stat -c %s "$work/gnu.cpio.gz")
files=$(find "$tree" | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
awk -v tf="$best_f" -v tg="$best_g" -v sf="$size_f" -v sg="$size_g" -v n="$files" -v b="$bytes" \
	-v cores="$(nproc)" -v tree="$tree" -v runs="$runs" 'BEGIN {
	printf "tree             %s (%d entries, %.0f MB, %d cores, best of %d)\n", tree, n, b / 1e6, cores, runs
	printf "fledge pack      %7.2f s  %10d bytes\n", tf, sf
	printf "cpio | gzip -9   %7.2f s  %10d bytes\n", tg, sg
	printf "time ratio       %7.3f  (fledge / cpio|gzip -9)\n", tf / tg
	printf "size ratio       %7.3f\n", sf / sg
}'
