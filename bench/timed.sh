# Sourced by the bench scripts.

# timed CMD prints the seconds CMD took, wall clock.
timed() {
	local start end
	start=$(date +%s.%N)
	"$@"
	end=$(date +%s.%N)
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}
