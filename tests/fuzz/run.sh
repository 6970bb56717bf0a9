#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run.sh - runs each libFuzzer target for a fixed time (make fuzz-run).
#
#   FUZZ_SECONDS=25 tests/fuzz/run.sh FUZZDIR TARGET...
#
# FUZZDIR is tests/fuzz of the source tree: the seed corpus of target T is
# FUZZDIR/corpus/T, its dictionary FUZZDIR/T.dict and its own libFuzzer
# options FUZZDIR/T.options (one line) if there are.  What
# libFuzzer finds on the way goes to fuzz-corpus/T in the current
# directory (the seeds are only read), a crashing input to
# fuzz-artifacts/T-crash-*.  One process at a time (no -jobs or -fork).
#
# Prints one TAP line per target with libFuzzer's final figures (runs,
# cov, ft) and exits 1 if a target crashed, leaked, timed out or broke
# one of its checks.  With MQBUS_RESULTS_DIR set, each target's output is
# also kept in MQBUS_RESULTS_DIR/T.log (tests/run-tests.sh counts it).
# FUZZ_ARGS adds libFuzzer options to every run.

set -u
if [ $# -lt 2 ]; then
	echo "usage: run.sh FUZZDIR TARGET..." >&2
	exit 2
fi
fuzzdir=$1
shift
seconds=${FUZZ_SECONDS:-25}
mkdir -p fuzz-artifacts
echo "1..$#"
i=0
failed=0
for target in "$@"; do
	i=$((i + 1))
	name=$(basename "$target")
	mkdir -p "fuzz-corpus/$name"
	args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=30
		-rss_limit_mb=2048
		-artifact_prefix="fuzz-artifacts/$name-")
	if [ -f "$fuzzdir/$name.dict" ]; then
		args+=(-dict="$fuzzdir/$name.dict")
	fi
	if [ -f "$fuzzdir/$name.options" ]; then
		read -r -a opts <"$fuzzdir/$name.options"
		args+=("${opts[@]}")
	fi
	log=$(mktemp)
	# shellcheck disable=SC2086
	"$target" "${args[@]}" ${FUZZ_ARGS:-} "fuzz-corpus/$name" \
		"$fuzzdir/corpus/$name" >"$log" 2>&1
	st=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	final=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
	summary="$name: ${runs:-?} runs in ${seconds} s, cov ${cov:-?}, ft ${ft:-?}"
	if [ "$st" -eq 0 ] && [ -n "$final" ]; then
		echo "ok $i - $summary"
	else
		echo "not ok $i - $summary (exit $st); last lines:"
		tail -n 60 "$log" | sed 's/^/# /'
		failed=1
	fi
	if [ -n "${MQBUS_RESULTS_DIR:-}" ] && mkdir -p "$MQBUS_RESULTS_DIR"; then
		{
			cat "$log"
			if [ "$st" -eq 0 ] && [ -n "$final" ]; then
				echo "ok 1 - $summary"
			else
				echo "not ok 1 - $summary (exit $st)"
			fi
			echo "# harness-exit: $st"
		} >"$MQBUS_RESULTS_DIR/$name.log"
	fi
	rm -f "$log"
done
exit $failed
