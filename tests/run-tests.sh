#!/bin/bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh - every test of mqbus, the way CI runs them.
#
#   ./tests/run-tests.sh
#
# 1. scripts/deps.sh (installs what is missing; nothing when all is there)
# 2. autoreconf -fi
# 3. build/: configure, make, make check
# 4. build-san/: configure --enable-sanitizers, make, make check
#    (AddressSanitizer + UBSan)
# 5. build/: make distcheck (the tarball builds and passes its tests)
# 6. build-fuzz/: configure CC=clang --enable-fuzz, make fuzz-run: each
#    libFuzzer target of tests/fuzz runs FUZZ_SECONDS (default 25) from
#    its seed corpus; a crash, leak or broken check fails it
#
# Builds use make -j2; the tests themselves run one at a time (the harness
# serializes them: RLIMIT_MSGQUEUE is shared by all tests of a uid).
# Each test's output is also kept in build-results/<run>/<test>.log.
# At the end: one line per suite and run, then the total as
# "N passed, N failed", counting individual test cases: Check's
# "Checks: N, Failures: F, Errors: E" lines and TAP "ok"/"not ok" lines.
# A test that printed neither counts as one failure, so does a failed
# build step.  Exit status: 0 only if nothing failed.
#
# Environment: MQBUS_SKIP_SANITIZERS=1, MQBUS_SKIP_DISTCHECK=1,
# MQBUS_SKIP_FUZZ=1 to leave a stage out (all run by default and in CI);
# FUZZ_SECONDS=N for another time per fuzz target.

set -uo pipefail
export LC_ALL=C

SRC=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$SRC/build-results
JOBS=${MQBUS_JOBS:-2}
T_START=$(date +%s)

cd "$SRC" || exit 1
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

declare -A RUN_STEP_FAILED=()

# step RUN NAME CMD...: runs CMD with its output in build-results/NAME.log
step() {
	local run=$1 name=$2 log t0 st
	shift 2
	log=$RESULTS/$name.log
	t0=$(date +%s)
	printf '== %-28s ' "$name"
	"$@" >"$log" 2>&1
	st=$?
	if [ $st -eq 0 ]; then
		printf 'ok (%ds)\n' $(($(date +%s) - t0))
		return 0
	fi
	printf 'FAILED (exit %d, %ds): last lines of %s\n' "$st" \
		$(($(date +%s) - t0)) "${log#"$SRC"/}"
	tail -n 40 "$log" | sed 's/^/   | /'
	RUN_STEP_FAILED[$run]=$((${RUN_STEP_FAILED[$run]:-0} + 1))
	return 1
}

# make_check RUN DIR [TARGET [VAR=VALUE...]]: runs make TARGET in DIR with
# the tests' outputs collected in build-results/RUN/
make_check() {
	local run=$1 dir=$2 target=${3:-check}
	shift 3 2>/dev/null || shift $#
	MQBUS_RESULTS_DIR=$RESULTS/$run make -C "$dir" -j"$JOBS" "$target" "$@"
}

# ------------------------------------------------------------ steps

step setup deps bash "$SRC/scripts/deps.sh"
if step setup autoreconf autoreconf -fi; then
	rm -rf "$SRC/build" "$SRC/build-san" "$SRC/build-fuzz"
	mkdir -p "$SRC/build" "$SRC/build-san" "$SRC/build-fuzz"

	if step plain configure sh -c 'cd build && ../configure'; then
		step plain make make -C build -j"$JOBS" &&
			step plain "make check" make_check plain build
	fi

	if [ "${MQBUS_SKIP_SANITIZERS:-}" != 1 ]; then
		if step sanitizers "configure --enable-sanitizers" \
			sh -c 'cd build-san && ../configure --enable-sanitizers'; then
			step sanitizers "make (sanitizers)" \
				make -C build-san -j"$JOBS" &&
				step sanitizers "make check (sanitizers)" \
					make_check sanitizers build-san
		fi
	fi

	if [ "${MQBUS_SKIP_DISTCHECK:-}" != 1 ] && [ -f build/Makefile ]; then
		step distcheck "make distcheck" make_check distcheck build distcheck
	fi

	if [ "${MQBUS_SKIP_FUZZ:-}" != 1 ]; then
		if step fuzz "configure --enable-fuzz" \
			sh -c 'cd build-fuzz && ../configure CC=clang --enable-fuzz'; then
			step fuzz "make fuzz" make -C build-fuzz -j"$JOBS" fuzz &&
				step fuzz "make fuzz-run" make_check fuzz build-fuzz \
					fuzz-run FUZZ_SECONDS="${FUZZ_SECONDS:-25}"
		fi
	fi
fi

# ---- Debian packages (tests/debian.sh): in CI (CI=true) or when asked
# with MQBUS_TEST_DEBIAN=1 (MQBUS_TEST_DEBIAN=0 leaves it out in CI too).
# It builds the packages from a copy of the tree, installs them into this
# machine, runs the installed daemon, then purges them: root only.  Its
# TAP lines (in build-results/debian.log) are counted like a suite's.
if [ "${MQBUS_TEST_DEBIAN:-}" = 1 ] ||
	{ [ "${CI:-}" = true ] && [ "${MQBUS_TEST_DEBIAN:-}" != 0 ]; }; then
	step debian debian sh -c 'bash "$1/tests/debian.sh"; st=$?
		echo "# harness-exit: $st"; exit $st' sh "$SRC"
fi

# ------------------------------------------------------------ counting

TOTAL_PASS=0
TOTAL_FAIL=0
TOTAL_SKIP=0

# count_log FILE: sets P F S (passed, failed, skipped cases) and NOTE
count_log() {
	local file=$1 exit_st line checks fails errs n_ok n_notok n_skip
	P=0 F=0 S=0 NOTE=
	exit_st=$(sed -n 's/^# harness-exit: //p' "$file" | tail -n 1)
	exit_st=${exit_st:-unknown}
	checks=0
	while IFS= read -r line; do
		if [[ $line =~ ^[0-9]+%:\ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
			checks=1
			fails=${BASH_REMATCH[2]}
			errs=${BASH_REMATCH[3]}
			P=$((P + BASH_REMATCH[1] - fails - errs))
			F=$((F + fails + errs))
		fi
	done <"$file"
	n_ok=$(grep -cE '^ok [0-9]+' "$file")
	n_skip=$(grep -cE '^ok [0-9]+.*# SKIP' "$file")
	n_notok=$(grep -cE '^not ok [0-9]+' "$file")
	if [ $((n_ok + n_notok)) -gt 0 ]; then
		P=$((P + n_ok - n_skip))
		S=$((S + n_skip))
		F=$((F + n_notok))
	fi
	if [ "$checks" = 0 ] && [ $((n_ok + n_notok)) -eq 0 ]; then
		if [ "$exit_st" = 77 ]; then
			NOTE="skipped"
		else
			F=$((F + 1))
			NOTE="no result lines (crashed?), exit $exit_st"
		fi
		return
	fi
	if [ "$exit_st" != 0 ] && [ "$exit_st" != 77 ] && [ "$F" -eq 0 ]; then
		F=1
		NOTE="exit $exit_st though no case failed"
	elif [ "$exit_st" != 0 ]; then
		NOTE="exit $exit_st"
	fi
}

# show_failures FILE: the failed cases of a log and what they said, so
# that a failure seen only in CI can be told from the summary alone
show_failures() {
	grep -E -A3 ':[0-9]+:[FE]:|^not ok [0-9]+' "$1" |
		head -n 24 | sed 's/^/    | /'
}

echo
echo "== results"
for run in plain sanitizers distcheck fuzz; do
	dir=$RESULTS/$run
	run_fail=0
	if [ -d "$dir" ]; then
		for log in "$dir"/*.log; do
			[ -e "$log" ] || continue
			count_log "$log"
			printf '%-11s %-14s %4d passed %3d failed%s%s\n' "$run" \
				"$(basename "$log" .log)" "$P" "$F" \
				"$([ "$S" -gt 0 ] && printf ' %3d skipped' "$S")" \
				"${NOTE:+  ($NOTE)}"
			TOTAL_PASS=$((TOTAL_PASS + P))
			TOTAL_FAIL=$((TOTAL_FAIL + F))
			TOTAL_SKIP=$((TOTAL_SKIP + S))
			run_fail=$((run_fail + F))
			[ "$F" -gt 0 ] && show_failures "$log"
		done
	fi
	# a failed step of a run whose tests show no failure (the build,
	# say) is a failure of its own
	if [ "${RUN_STEP_FAILED[$run]:-0}" -gt 0 ] && [ "$run_fail" -eq 0 ]; then
		printf '%-11s %-14s %4d passed %3d failed  (a build step failed)\n' \
			"$run" "-" 0 1
		TOTAL_FAIL=$((TOTAL_FAIL + 1))
	fi
done
# ---- Debian packages: the cases of tests/debian.sh, if it ran
if [ -f "$RESULTS/debian.log" ]; then
	count_log "$RESULTS/debian.log"
	printf '%-11s %-14s %4d passed %3d failed%s\n' debian debian.sh \
		"$P" "$F" "${NOTE:+  ($NOTE)}"
	TOTAL_PASS=$((TOTAL_PASS + P))
	TOTAL_FAIL=$((TOTAL_FAIL + F))
fi
if [ "${RUN_STEP_FAILED[setup]:-0}" -gt 0 ]; then
	printf '%-11s %-14s %4d passed %3d failed  (deps or autoreconf failed)\n' \
		setup - 0 1
	TOTAL_FAIL=$((TOTAL_FAIL + 1))
fi
[ "$TOTAL_SKIP" -gt 0 ] && echo "($TOTAL_SKIP cases skipped)"
echo "(took $(($(date +%s) - T_START)) s; logs in ${RESULTS#"$SRC"/}/)"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
