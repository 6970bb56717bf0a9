#!/bin/bash
# SPDX-License-Identifier: MIT
#
# alloc.sh - mqbusd does not allocate per message.
#
# The daemon runs with tests/helpers/malloc-count.so preloaded, which
# counts its malloc/calloc/realloc/free calls and writes them out when it
# exits.  For each wake-up method it runs twice on a bus of its own: once
# passing 1000 messages from a publisher to a subscriber, once 21000, both
# after the same warm-up of 2000 (tests/bench/alloc-driver).  Connecting,
# subscribing and shutting down cost the same in both runs, so the
# difference of the counts is what 20000 messages cost: it must stay below
# 50, i.e. nothing per message.
#
# TAP-style output: "ok N - name" / "not ok N - name", "1..N" and
# "# passed P failed F"; exit 1 if a check failed, 77 if it cannot run here
# (no preload module, or a sanitizer build, whose runtime must come first).

set -u
export LC_ALL=C

if [ -z "${top_srcdir:-}" ]; then
	top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
fi
if [ -z "${top_builddir:-}" ]; then
	top_builddir=$top_srcdir
fi
MQBUSD=${MQBUSD:-$top_builddir/daemon/mqbusd}
DRIVER=$top_builddir/tests/bench/alloc-driver
MODULE=$top_builddir/tests/helpers/.libs/malloc-count.so

WARMUP=2000
SMALL=1000
LARGE=21000
LIMIT=50

. "$top_srcdir/tests/tap.sh"
DPID=
BUSES=()
TMP=

cleanup() {
	local st=$? bus q
	trap - EXIT
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		kill -KILL "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	# every queue of our buses, if the mqueue file system shows them
	for bus in "${BUSES[@]}"; do
		for q in /dev/mqueue/"$bus" /dev/mqueue/"$bus".*; do
			[ -e "$q" ] && rm -f "$q"
		done
	done
	[ -n "$TMP" ] && rm -rf "$TMP"
	exit "$st"
}

skip_all() {
	echo "1..0 # SKIP $1"
	exit 77
}

for f in "$MQBUSD" "$DRIVER"; do
	if [ ! -x "$f" ]; then
		echo "# $f is missing: run make check"
		echo "1..0"
		echo "# passed 0 failed 1"
		exit 99
	fi
done
[ -f "$MODULE" ] || skip_all "no $MODULE (built by make check)"
if ldd "$MQBUSD" 2>/dev/null | grep -q 'libasan'; then
	skip_all "mqbusd is built with AddressSanitizer"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqbus-alloc.XXXXXX") || exit 99
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The sum of malloc, calloc and realloc calls in a count file.
allocs() {
	awk '$1 == "malloc" || $1 == "calloc" || $1 == "realloc" { n += $2 }
	     END { print n + 0 }' "$1"
}

frees() {
	awk '$1 == "free" { print $2 }' "$1"
}

# run WAKE MESSAGES: one daemon life with WARMUP + MESSAGES messages;
# leaves the counts in $TMP/WAKE.MESSAGES.  Returns 1 on failure.
run() {
	local wake=$1 msgs=$2 bus out st
	bus=$(printf 't-alloc-%s-%s-%s' "$$" "$wake" "$msgs")
	BUSES+=("$bus")
	out=$TMP/$wake.$msgs
	rm -f "$out"
	MALLOC_COUNT_FILE=$out LD_PRELOAD=$MODULE \
		"$MQBUSD" -b "$bus" --wake="$wake" 2>"$out.err" &
	DPID=$!
	# the clients too: libmqbus's receive path takes its messages
	# from a pool
	MALLOC_COUNT_FILE=$out.client LD_PRELOAD=$MODULE \
		"$DRIVER" "$bus" $((WARMUP + msgs)) 2>"$out.driver"
	st=$?
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID"
	local dst=$?
	DPID=
	if [ $st -ne 0 ]; then
		not_ok "$wake: $msgs messages after the warm-up" \
			"alloc-driver exited with status $st"
		diag_file "alloc-driver" "$out.driver"
		diag_file "mqbusd" "$out.err"
		return 1
	fi
	if [ $dst -ne 0 ] || [ ! -s "$out" ]; then
		not_ok "$wake: $msgs messages after the warm-up" \
			"mqbusd exited with status $dst, counts file: " \
			"$(cat "$out" 2>/dev/null)"
		diag_file "mqbusd" "$out.err"
		return 1
	fi
	ok "$wake: $msgs messages after the warm-up ($(allocs "$out") allocations, $(frees "$out") frees)"
	return 0
}

echo "# alloc: mqbusd with $MODULE; private IPC namespace: ${MQBUS_TEST_PRIVATE_IPC:-no}"
for wake in notify poll thread; do
	run "$wake" "$SMALL" || continue
	run "$wake" "$LARGE" || continue
	small=$(allocs "$TMP/$wake.$SMALL")
	large=$(allocs "$TMP/$wake.$LARGE")
	diff=$((large - small))
	fdiff=$(($(frees "$TMP/$wake.$LARGE") - $(frees "$TMP/$wake.$SMALL")))
	name="$wake: $((LARGE - SMALL)) more messages, $diff more allocations (limit $LIMIT)"
	if [ "$diff" -lt "$LIMIT" ]; then
		ok "$name"
	else
		not_ok "$name" \
			"allocations: $small with $SMALL messages, $large with $LARGE" \
			"frees: $fdiff more" \
			"that is about $(((diff * 1000) / (LARGE - SMALL))) per 1000 messages"
	fi
	small=$(allocs "$TMP/$wake.$SMALL.client")
	large=$(allocs "$TMP/$wake.$LARGE.client")
	diff=$((large - small))
	name="$wake: libmqbus (publisher and subscriber): $((LARGE - SMALL)) more messages, $diff more allocations (limit $LIMIT)"
	if [ -s "$TMP/$wake.$LARGE.client" ] && [ "$diff" -lt "$LIMIT" ]; then
		ok "$name"
	else
		not_ok "$name" \
			"allocations: $small with $SMALL messages, $large with $LARGE"
	fi
done

echo "1..$N"
echo "# passed $PASS failed $FAIL"
[ "$FAIL" -eq 0 ] && [ "$N" -gt 0 ]
