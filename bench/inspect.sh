#!/usr/bin/env bash
# Times `fledge ls -l`, `fledge why` and `fledge check` on a ~100 MB
# .cpio.gz (issue 5: each within 3 s, without extracting entries into a
# folder). The artifact is built by fledge itself from a mapped tree of mixed
# files: incompressible data, Go sources (text) and ELF programs from
# /usr/bin, so the gzip stream is about as large as the tree.
#
#   bench/inspect.sh            DATA_MB=200 bench/inspect.sh
#
# Each command runs twice: "cold" with an empty fledge cache (the stream is
# decompressed), "warm" with the decompressed stream the first run cached.
set -euo pipefail

data_mb=${DATA_MB:-90}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v busybox >/dev/null || { echo "inspect.sh: busybox not found: install busybox-static" >&2; exit 1; }
(cd "$here/.." && go build -o "$work/fledge" ./cmd/fledge)

# The tree: DATA_MB of random files of 16 KiB to 2 MiB, 20 MB of Go
# sources, 20 MB of host programs.
tree=$work/recipe/tree
mkdir -p "$tree/data" "$tree/src" "$tree/bin"
left=$((data_mb * 1024 * 1024))
i=0
while ((left > 0)); do
	size=$(((RANDOM % 128 + 1) * 16384))
	head -c "$size" /dev/urandom >"$tree/data/blob$i"
	left=$((left - size))
	i=$((i + 1))
done
# head ends find early; that SIGPIPE is not a failure.
set +o pipefail
(cd "$(go env GOROOT)/src" && find . -type f -name '*.go' -print0 | head -z -n 2500 | xargs -0 cp --parents -t "$tree/src")
find /usr/bin -maxdepth 1 -type f -size -2M -print0 | head -z -n 60 | xargs -0 cp -t "$tree/bin"
set -o pipefail
cat >"$work/recipe/init" <<'INIT'
#!/bin/sh
echo bench
poweroff -f
INIT
chmod 755 "$work/recipe/init"
cat >"$work/recipe/fledge.toml" <<'TOML'
version = "1"
strategy = "initramfs"
[init]
none = true
[source]
busybox_url = "file:///usr/bin/busybox"
[mappings]
"./init" = "/init"
"./tree" = "/opt/tree"
TOML

export XDG_CACHE_HOME=$work/cache
"$work/fledge" build -c "$work/recipe/fledge.toml" -o "$work/big" >/dev/null
art=$work/big.cpio.gz
entries=$("$work/fledge" ls "$art" | wc -l)
rm -rf "$XDG_CACHE_HOME"

# timed NAME CMD... prints the seconds CMD took, wall clock.
timed() {
	local name=$1 start end
	shift
	start=$(date +%s.%N)
	"$@" >/dev/null || [[ $? -eq 2 ]] # check exits 2 on lint errors
	end=$(date +%s.%N)
	awk -v n="$name" -v s="$start" -v e="$end" 'BEGIN { printf "%-26s %6.2f s\n", n, e - s }'
}

awk -v a="$(basename "$art")" -v z="$(stat -c %s "$art")" -v t="$(du -sb "$tree" | cut -f1)" -v n="$entries" -v c="$(nproc)" \
	'BEGIN { printf "artifact %s: %.1f MB gzip, %.1f MB tree, %d entries, %d cores\n", a, z / 1e6, t / 1e6, n, c }'
for run in cold warm; do
	[[ $run == cold ]] && rm -rf "$XDG_CACHE_HOME"
	timed "ls -l ($run)" "$work/fledge" ls -l "$art"
	[[ $run == cold ]] && rm -rf "$XDG_CACHE_HOME"
	timed "why ($run)" "$work/fledge" why "$art" /opt/tree/data/blob0
	[[ $run == cold ]] && rm -rf "$XDG_CACHE_HOME"
	timed "check ($run)" "$work/fledge" check "$art"
	# The second pass finds the stream the last cold run left in the cache.
	[[ $run == cold ]] && "$work/fledge" ls "$art" >/dev/null
done
