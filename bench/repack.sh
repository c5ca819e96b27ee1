#!/usr/bin/env bash
# Measures re-packing with the piece cache, for each pieced compression, with
# the real fledge binary: DIR (default: the Go source tree) copied and mapped
# at /src into a none-mode recipe without BusyBox, all in one run:
#
#   cold         empty cache
#   +1 MiB       re-pack after writing a new 1 MiB file into the tree
#   no change    re-pack with nothing changed
#   edit         re-pack after a line is added to a small file (the
#                compression of its whole group again: up to 2 MiB for
#                gzip and lz4, 16 MiB for zstd and xz)
#
# Times are the best of RUNS, ratios against the cold pack. Each re-pack must
# be byte-identical to a cold pack of the same tree and pass its tool's test
# (gzip -t, zstd -t, lz4 -t, xz -t). The pieced size is compared with one
# stream of the same compression (bench/packtree -whole), and for gzip with
# `gzip -9`, on DIR itself: the random files the re-packs add grow with RUNS
# and the order of COMPRESSIONS, and would skew it.
# The load average is printed: the figures mean little on a busy machine.
#
#   bench/repack.sh [DIR]      RUNS=5 COMPRESSIONS="gzip zstd" bench/repack.sh
set -euo pipefail

src=${1:-$(go env GOROOT)/src}
runs=${RUNS:-3}
comps=${COMPRESSIONS:-gzip zstd lz4 xz}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A ext=([gzip]=.cpio.gz [zstd]=.cpio.zst [lz4]=.cpio.lz4 [xz]=.cpio.xz)
for c in $comps; do
	tool=$c
	[ -n "${ext[$c]:-}" ] || { echo "repack.sh: $c is not a pieced compression (gzip zstd lz4 xz)" >&2; exit 1; }
	command -v "$tool" >/dev/null || { echo "repack.sh: $tool not found" >&2; exit 1; }
done
(cd "$repo" && go build -o "$work/fledge" ./cmd/fledge && go build -o "$work/packtree" ./bench/packtree)
mkdir "$work/r"
cp -a "$src" "$work/r/tree"
printf '#!/bin/sh\n' >"$work/r/init"
chmod 755 "$work/r/init"
cat >"$work/r/fledge.toml" <<'TOML'
version = "1"
strategy = "initramfs"
[init]
none = true
[source]
busybox = false
[mappings]
"./init" = "/init"
"./tree" = "/src"
TOML
tree=$work/r/tree

. "$here/timed.sh"

pack() { "$work/fledge" pack -c "$work/r/fledge.toml" --cache-dir "$1" -o "$2" >/dev/null; }
newfile() { head -c 786432 /dev/urandom | base64 -w 0 >"$tree/new-$1.txt"; } # 1 MiB of text
# A small file from the middle of the tree, in archive order.
edited=$(find "$tree" -type f -size -32k | LC_ALL=C sort | awk '{ f[NR] = $0 } END { print f[int((NR + 1) / 2)] }')
edit() { echo "// edit $1" >>"$edited"; }

echo "tree: copy of $src ($(find "$tree" | wc -l) entries, $(du -sb "$tree" | awk '{printf "%.0f MB", $1 / 1e6}'), $(nproc) cores, best of $runs)"
echo "load before: $(uptime | sed 's/.*load average: //')"
printf '%-5s %9s %9s %7s %9s %7s %9s %7s %11s %9s\n' "" cold "+1 MiB" ratio "no change" ratio edit ratio bytes "vs whole"
n=0
for c in $comps; do
	e=${ext[$c]}
	cache=$work/cache-$c
	cold= change= same= ed=
	for ((i = 0; i < runs; i++)); do
		rm -rf "$work/cold"
		cold=$(best "$cold" "$(timed pack "$work/cold" "$work/cold$e")")
	done
	pack "$cache" "$work/warm$e" # fills the cache
	for ((i = 0; i < runs; i++)); do
		newfile "$n"
		n=$((n + 1))
		change=$(best "$change" "$(timed pack "$cache" "$work/warm$e")")
		same=$(best "$same" "$(timed pack "$cache" "$work/warm$e")")
		edit "$n"
		ed=$(best "$ed" "$(timed pack "$cache" "$work/warm$e")")
	done
	rm -rf "$work/cold"
	pack "$work/cold" "$work/cold$e"
	cmp "$work/warm$e" "$work/cold$e" || { echo "repack.sh: the $c re-pack differs from a cold pack of the same tree" >&2; exit 1; }
	"$c" -t -q "$work/warm$e"
	if [ "$c" = gzip ]; then
		"$work/packtree" -compression none -o "$work/raw.cpio" "$src"
		gzip -9 -c "$work/raw.cpio" >"$work/whole$e"
		"$work/packtree" -compression gzip -o "$work/pieced$e" "$src"
	else
		"$work/packtree" -compression "$c" -whole -o "$work/whole$e" "$src"
		"$work/packtree" -compression "$c" -o "$work/pieced$e" "$src"
	fi
	awk -v c="$c" -v cold="$cold" -v ch="$change" -v same="$same" -v ed="$ed" -v size="$(stat -c %s "$work/warm$e")" \
		-v p="$(stat -c %s "$work/pieced$e")" -v w="$(stat -c %s "$work/whole$e")" 'BEGIN {
		printf "%-5s %8.3fs %8.3fs %6.3fx %8.3fs %6.3fx %8.3fs %6.3fx %11d %+8.2f%%\n", c, cold, ch, ch / cold, same, same / cold, ed, ed / cold, size, (p / w - 1) * 100
	}'
done
echo "load after: $(uptime | sed 's/.*load average: //')"
echo "every re-pack is byte-identical to a cold pack and passes its tool's test; 'vs whole' is the pieced size against one stream (gzip: gzip -9)"
