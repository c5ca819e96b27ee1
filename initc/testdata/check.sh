# Run by testdata/agent.c as PID 1 of the test namespace, after the init.
echo "pid=$$"
while read -r src dir fstype opts rest; do
	case "$dir" in
	/dev | /proc | /sys | /tmp | /run) echo "mount=$dir $fstype" ;;
	esac
done </proc/mounts
echo "mode=/tmp $(busybox stat -c %a /tmp)"
echo "mode=/run $(busybox stat -c %a /run)"
set -- $(busybox cut -d' ' -f6,7 /proc/1/stat)
echo "session=$1"
echo "tty_nr=$2"
echo "lo_flags=$(busybox cat /sys/class/net/lo/flags)"
