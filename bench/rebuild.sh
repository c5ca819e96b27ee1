#!/usr/bin/env bash
# Times a warm `fledge build` of a recipe (default: examples/default) with
# fledge at BASE (default: main) and with this checkout, in the same run:
# both get a warmed cache (BusyBox and the piece cache) before the timed
# builds, and a warm artifact must equal the cold one.
#
#   bench/rebuild.sh [RECIPE]      RUNS=5 BASE=main bench/rebuild.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
recipe=$(realpath "${1:-$repo/examples/default/fledge.toml}")
runs=${RUNS:-5}
base=${BASE:-main}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$here/timed.sh"

mkdir "$work/base"
git -C "$repo" archive "$base" | tar -x -C "$work/base"
(cd "$work/base" && go build -o "$work/fledge-base" ./cmd/fledge)
(cd "$repo" && go build -o "$work/fledge" ./cmd/fledge)

build() { XDG_CACHE_HOME="$work/cache-$1" "$work/$1" build -c "$recipe" -o "$work/out-$1" >/dev/null; }

build fledge-base
build fledge
cp "$work/out-fledge.cpio.gz" "$work/cold.cpio.gz"
build fledge
cmp "$work/out-fledge.cpio.gz" "$work/cold.cpio.gz"
b= n=
for ((i = 0; i < runs; i++)); do
	b=$(best "$b" "$(timed build fledge-base)")
	n=$(best "$n" "$(timed build fledge)")
done
awk -v b="$b" -v n="$n" -v r="$recipe" -v runs="$runs" -v base="$base" 'BEGIN {
	printf "warm fledge build of %s (best of %d)\n", r, runs
	printf "base (%s)   %7.3f s\n", base, b
	printf "this tree    %7.3f s   %.3fx base\n", n, n / b
}'
