#!/usr/bin/env bash
# The cost of one FUSE round trip through `fledge mount`, by where fledge
# and the process asking run: on the same CPU, on two different CPUs, and
# wherever the scheduler puts them (how a mount is normally used). Each
# request is a getxattr that fledge answers from memory, so the figure is
# the kernel's and go-fuse's part of every request: a tar x of the Go tree
# makes about 8 requests per file.
#
#   bench/roundtrip.sh            N=200000 bench/roundtrip.sh
#
# As root: mounting needs /dev/fuse. Needs 2 CPUs and taskset (util-linux).
set -euo pipefail

n=${N:-50000}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=mounted.sh
. "$here/mounted.sh"

[[ $(id -u) == 0 ]] || { echo "roundtrip.sh: run as root (fledge mount needs /dev/fuse)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "roundtrip.sh: taskset not found: install util-linux" >&2; exit 1; }
(($(nproc) >= 2)) || { echo "roundtrip.sh: needs 2 CPUs, this machine has $(nproc)" >&2; exit 1; }
(cd "$here/.." && go build -o "$work/fledge" ./cmd/fledge && go build -o "$work/roundtrip" ./bench/roundtrip)
cp -r "$here/../examples/default" "$work/ws"
mkdir "$mnt"
export XDG_CACHE_HOME=$work/cache

# run SERVER_CPUS CLIENT_CPUS: mount with fledge on SERVER_CPUS, time the
# requests from CLIENT_CPUS ("all": no pinning); prints microseconds each.
run() {
	local pin=() us
	[[ $1 == all ]] || pin=(taskset -c "$1")
	start_mount "$work/ws" "$mnt" "${pin[@]}" "$work/fledge" mount --xattrs || exit 1
	pin=()
	[[ $2 == all ]] || pin=(taskset -c "$2")
	us=$("${pin[@]}" "$work/roundtrip" -n "$n" "$mnt/usr/bin/hello") || { stop_mount "$mnt"; exit 1; }
	stop_mount "$mnt"
	echo "$us"
}

same=$(run 0 0) || exit 1
other=$(run 0 1) || exit 1
free=$(run all all) || exit 1
printf '%-34s %8s\n' "fledge and the caller" "us/req"
printf '%-34s %8s\n' "on the same CPU" "$same"
printf '%-34s %8s  (%s x the same CPU)\n' "on two CPUs" "$other" "$(awk -v a="$other" -v b="$same" 'BEGIN { printf "%.1f", a / b }')"
printf '%-34s %8s  (%s x the same CPU)\n' "where the scheduler puts them" "$free" "$(awk -v a="$free" -v b="$same" 'BEGIN { printf "%.1f", a / b }')"
