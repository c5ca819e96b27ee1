#!/usr/bin/env bash
# Times `fledge build` of the minimal default-mode recipe (examples/default):
# the cold build (empty cache: BusyBox read, every piece
# compressed) once, and the warm build (everything cached, the artifact
# unchanged) as the median of RUNS, printed side by side with the load
# average, which the figures depend on.
#
#   bench/warmbuild.sh      RUNS=21 bench/warmbuild.sh
set -euo pipefail

runs=${RUNS:-11}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$repo" && go build -o "$work/fledge" ./cmd/fledge)
cp -a "$repo/examples/default" "$work/recipe"
export XDG_CACHE_HOME=$work/cache

. "$here/timed.sh"

build() { "$work/fledge" build -c "$work/recipe/fledge.toml" -o "$work/out/plugin" >/dev/null; }

echo "load before: $(uptime | sed 's/.*load average: //')"
cold=$(timed build)
sum=$(sha256sum <"$work/out/plugin.cpio.gz")
warm=()
for ((i = 0; i < runs; i++)); do
	warm+=("$(timed build)")
done
[ "$(sha256sum <"$work/out/plugin.cpio.gz")" = "$sum" ] || { echo "warmbuild.sh: a warm build changed the artifact" >&2; exit 1; }
median=$(printf '%s\n' "${warm[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
echo "load after: $(uptime | sed 's/.*load average: //')"
printf 'cold build  %7.3f s\nwarm build  %7.3f s  (median of %d; min %s, max %s)\n' "$cold" "$median" "$runs" \
	"$(printf '%s\n' "${warm[@]}" | sort -n | head -1)" "$(printf '%s\n' "${warm[@]}" | sort -n | tail -1)"
