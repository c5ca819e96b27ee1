# Sourced by the bench scripts that mount a recipe. It makes the scratch
# folder $work (they build fledge into $work/fledge) and the mountpoint
# path $mnt, and on exit unmounts and removes both.

work=$(mktemp -d)
mnt=$work/mnt
pid=
trap 'stop_mount "$mnt"; rm -rf "$work"' EXIT

# start_mount WS MNT CMD...: serves the recipe in folder WS at MNT with
# CMD (a fledge mount command line, maybe behind taskset) in the
# background, and returns once it is mounted; sets pid.
start_mount() {
	local ws=$1 mnt=$2
	shift 2
	(cd "$ws" && exec "$@" "$mnt" 2>"$work/mount.log") &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		grep -q "mounted at" "$work/mount.log" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { cat "$work/mount.log" >&2; return 1; }
		sleep 0.1
	done
	echo "$(basename "$0"): fledge mount did not start" >&2
	return 1
}

# stop_mount MNT: unmounts MNT (lazily if it is busy) and waits for fledge,
# which is stopped if there is nothing to unmount (it never mounted).
stop_mount() {
	[[ -n $pid ]] || return 0
	"$work/fledge" umount "$1" 2>/dev/null || "$work/fledge" umount --lazy "$1" 2>/dev/null ||
		kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
