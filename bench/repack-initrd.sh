#!/usr/bin/env bash
# Measures adding one 1 MiB file to an existing zstd initrd and re-packing
# it, both ways, in one run (issue 17):
#
#   fledge     the edit kept in the artifact's workspace (as `fledge mount`
#              keeps it), then `fledge pack INITRD -o NEW`: untouched
#              segments copied, the main one written again
#   by hand    unmkinitramfs, the file added, then the main archive rebuilt
#              as mkinitramfs builds it (find | LC_ALL=C sort | cpio -o -H
#              newc -R 0:0 --reproducible | zstd -q -9) and `cat early main`
#
# and prints each way's time (best of RUNS) and output size; it checks that
# fledge's output holds the file (fledge cat) and that its early archive
# is the initrd's, byte for byte. As root (unmkinitramfs keeps owners).
#
#   bench/repack-initrd.sh INITRD      RUNS=3 bench/repack-initrd.sh /boot/initrd.img-$(uname -r)
#
# A ~60 MB zstd initrd is what the issue asks for: mkinitramfs with
# MODULES=most makes one of that size for a Debian kernel.
set -euo pipefail

initrd=${1:?usage: bench/repack-initrd.sh INITRD (a zstd initrd, e.g. /boot/initrd.img-VERSION)}
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for tool in unmkinitramfs cpio zstd cmp; do
	command -v "$tool" >/dev/null || { echo "repack-initrd.sh: $tool not found (initramfs-tools, cpio, zstd)" >&2; exit 1; }
done
(cd "$repo" && GOTOOLCHAIN=local go build -o "$work/fledge" ./cmd/fledge)
head -c $((1 << 20)) /dev/urandom > "$work/payload"

best() { # best TIME...: the smallest
	printf '%s\n' "$@" | sort -g | head -1
}

fledge_times=()
for ((i = 0; i < runs; i++)); do
	ws="$work/ws$i"
	mkdir -p "$ws/edits/usr/share"
	cp "$work/payload" "$ws/edits/usr/share/payload"
	start=$(date +%s.%N)
	"$work/fledge" pack --workspace "$ws" "$initrd" -o "$work/fledge.img" >/dev/null
	fledge_times+=("$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.2f", a - b }')")
done
"$work/fledge" cat "$work/fledge.img" /usr/share/payload | cmp - "$work/payload"
early=$("$work/fledge" ls --segments --json "$initrd" | jq '.[0] | select(.compression == "none") | .compressed_bytes // 0')
cmp -n "${early:-0}" "$initrd" "$work/fledge.img"

hand_times=()
for ((i = 0; i < runs; i++)); do
	d="$work/hand$i"
	mkdir "$d"
	start=$(date +%s.%N)
	unmkinitramfs "$initrd" "$d/x"
	main="$d/x"
	[[ -d "$d/x/main" ]] && main="$d/x/main"
	mkdir -p "$main/usr/share" && cp "$work/payload" "$main/usr/share/payload"
	: >"$d/early.cpio"
	if [[ -d "$d/x/early" ]]; then
		(cd "$d/x/early" && find . | LC_ALL=C sort | cpio --quiet -R 0:0 --reproducible -o -H newc) >"$d/early.cpio"
	fi
	(cd "$main" && find . | LC_ALL=C sort | cpio --quiet -R 0:0 --reproducible -o -H newc | zstd -q -9) >"$d/main.cpio.zst"
	cat "$d/early.cpio" "$d/main.cpio.zst" >"$work/hand.img"
	hand_times+=("$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.2f", a - b }')")
	rm -rf "$d"
done

printf '%-8s %8s s  %12s bytes\n' fledge "$(best "${fledge_times[@]}")" "$(stat -c %s "$work/fledge.img")"
printf '%-8s %8s s  %12s bytes\n' "by hand" "$(best "${hand_times[@]}")" "$(stat -c %s "$work/hand.img")"
