#!/usr/bin/env bash
# Packs one tree with every compression `fledge pack` writes and boots each
# image under QEMU, in the same run: archive size, pack time, and the time
# the guest kernel took to unpack it (the unpack phase of `fledge boot
# --json`, from the kernel's own timestamps).
#
#   bench/boot.sh [DIR]      (default /usr/local/go/pkg/tool/linux_amd64)
#   RUNS=3 BOOTS=3 FLEDGE_KERNEL=/var/cache/fledge-ci/vmlinuz bench/boot.sh
#   APPEND=initramfs_async=0 bench/boot.sh   (unpack without other initcalls)
#
# The image is BusyBox, an /init that prints a line and powers off, and DIR
# mapped at /tree. Packs and boots alternate between the compressions round
# by round, so the load of the shared machine falls on all of them alike;
# the best of RUNS packs and of BOOTS boots is shown, with ratios against
# gzip, fledge's default, measured in the same run.
set -euo pipefail

tree=$(cd "${1:-/usr/local/go/pkg/tool/linux_amd64}" && pwd)
runs=${RUNS:-1}
boots=${BOOTS:-1}
memory=${MEMORY:-1024}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v jq >/dev/null || { echo "boot.sh: jq not found: install it (Debian: jq)" >&2; exit 1; }
busybox=$(command -v busybox) || { echo "boot.sh: busybox not found: install busybox-static" >&2; exit 1; }
if [[ -z ${FLEDGE_KERNEL:-} && -f /var/cache/fledge-ci/vmlinuz ]]; then
	export FLEDGE_KERNEL=/var/cache/fledge-ci/vmlinuz
fi
(cd "$here/.." && go build -o "$work/fledge" ./cmd/fledge)

# The compressions are the ones `fledge pack --help` names for
# --compression, so a new one is benchmarked without editing this script.
help=$("$work/fledge" pack --help | grep -e '--compression')
compressions=()
for c in none gzip zstd xz lz4 bzip2 lzma lzo; do
	if grep -qw -- "$c" <<<"$help"; then compressions+=("$c"); fi
done

mkdir "$work/recipe"
cat >"$work/recipe/fledge.toml" <<TOML
version = "1"
strategy = "initramfs"
[init]
none = true
[source]
busybox_url = "file://$busybox"
[mappings]
"./init" = "/init"
"$tree" = "/tree"
TOML
printf '#!/bin/sh\necho bench-boot-ready\npoweroff -f\n' >"$work/recipe/init"
chmod 755 "$work/recipe/init"
export XDG_CACHE_HOME=$work/cache

ext() { case $1 in none) echo cpio ;; gzip) echo cpio.gz ;; zstd) echo cpio.zst ;; *) echo "cpio.$1" ;; esac; }

. "$here/timed.sh"

pack() { "$work/fledge" pack -c "$work/recipe/fledge.toml" -o "$work/image.$(ext "$1")" --compression "$1" >/dev/null; }

declare -A pack_s unpack_s kernel_s
for c in "${compressions[@]}"; do pack "$c"; done # warm the page cache
for ((i = 0; i < runs; i++)); do
	for c in "${compressions[@]}"; do pack_s[$c]=$(best "${pack_s[$c]:-}" "$(timed pack "$c")"); done
done
for ((i = 0; i < boots; i++)); do
	for c in "${compressions[@]}"; do
		report=$("$work/fledge" boot "$work/image.$(ext "$c")" --json --console /dev/null \
			--expect '^bench-boot-ready$' --memory "$memory" --timeout 5m ${APPEND:+--append "$APPEND"}) || {
			echo "boot.sh: boot of the $c image failed: $report" >&2
			exit 1
		}
		unpack_s[$c]=$(best "${unpack_s[$c]:-}" "$(jq -r .phases.unpack_s <<<"$report")")
		kernel_s[$c]=$(best "${kernel_s[$c]:-}" "$(jq -r .phases.kernel_s <<<"$report")")
	done
done

files=$(find "$tree" | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
printf 'tree %s (%d entries, %.1f MB), %d cores, best of %d packs and %d boots, kernel %s%s\n' \
	"$tree" "$files" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" "$(nproc)" "$runs" "$boots" \
	"$FLEDGE_KERNEL" "${APPEND:+, append $APPEND}"
printf '| compression | size | pack | in-guest unpack | unpack / gzip |\n|---|---|---|---|---|\n'
for c in "${compressions[@]}"; do
	size=$(stat -c %s "$work/image.$(ext "$c")")
	awk -v c="$c" -v s="$size" -v p="${pack_s[$c]}" -v u="${unpack_s[$c]}" -v g="${unpack_s[gzip]}" \
		'BEGIN { printf "| %s | %.1f MB | %.2f s | %.2f s | %.2f |\n", c, s / 1e6, p, u, u / g }'
done
