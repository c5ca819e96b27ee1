# Sourced by the bench scripts that mount. It makes the scratch folder
# $work (they build fledge into $work/fledge) and the mountpoint path $mnt,
# and on exit unmounts whatever start_mount mounted and removes $work.

work=$(mktemp -d)
mnt=$work/mnt
declare -A servers=()
trap 'for m in "${!servers[@]}"; do stop_mount "$m"; done; rm -rf "$work"' EXIT

# start_mount DIR MNT CMD...: runs CMD... MNT (a fledge mount command line,
# maybe behind taskset, or bench/loopback) in folder DIR in the background,
# and returns once it says it is mounted.
start_mount() {
	local dir=$1 mnt=$2 log
	shift 2
	log=$work/mount-$(basename "$mnt").log
	(cd "$dir" && exec "$@" "$mnt" 2>"$log") &
	servers[$mnt]=$!
	for ((i = 0; i < 600; i++)); do
		grep -q "mounted at" "$log" 2>/dev/null && return 0
		kill -0 "${servers[$mnt]}" 2>/dev/null || { cat "$log" >&2; return 1; }
		sleep 0.1
	done
	echo "$(basename "$0"): $* did not mount at $mnt" >&2
	return 1
}

# stop_mount MNT: unmounts MNT (lazily if it is busy) and waits for its
# server, which is stopped if there is nothing to unmount (it never
# mounted).
stop_mount() {
	local pid=${servers[$1]:-}
	[[ -n $pid ]] || return 0
	"$work/fledge" umount "$1" 2>/dev/null || "$work/fledge" umount --lazy "$1" 2>/dev/null ||
		kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "servers[$1]"
}
