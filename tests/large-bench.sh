#!/bin/bash
# SPDX-License-Identifier: MIT
#
# large-bench.sh - tests/bench/large-bench runs briefly, every row of it.
#
# Runs `large-bench` at 16 KiB and 1 MiB with a few MiB a run and one
# repetition: through the direct queue pair, through the sealed-memfd
# pair, through mqbusd and through dbus-broker (a broadcast signal with a
# match rule).  Every receiver of the bench reads every byte of every
# message and fails the run on the first one lost, cut, out of order or
# with a byte wrong; here every row must be there with figures (and the
# round trips of the direct pair, the memfd pair and mqbus), and the
# mqbus row must carry its ratios to the direct pair, the memfd pair and
# dbus-broker (xdirect, xmemfd, xdbus, wdirect, wmemfd, wdbus).  Then,
# with MQBUS_LARGE_BENCH_SKIP making one path's publisher leave a message
# out, and with MQBUS_LARGE_BENCH_CORRUPT making it flip one byte in the
# middle of a message, the bench must notice and fail, for every path.
#
# dbus-broker must be installed (scripts/deps.sh installs it): if it is
# not, the test fails under CI=true and is skipped (77) elsewhere.
#
# TAP-style output: "ok N - name" / "not ok N - name", "1..N" and
# "# passed P failed F"; exit 1 if a check failed.

set -u
export LC_ALL=C

if [ -z "${top_srcdir:-}" ]; then
	top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
fi
if [ -z "${top_builddir:-}" ]; then
	top_builddir=$top_srcdir
fi
BENCH=$top_builddir/tests/bench/large-bench
DAEMON=$top_builddir/daemon/mqbusd

. "$top_srcdir/tests/tap.sh"
TMP=

cleanup() {
	trap - EXIT
	[ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT

if [ ! -x "$BENCH" ]; then
	not_ok "large-bench is built" "no $BENCH"
	finish
fi
TMP=$(mktemp -d /tmp/mqbus-large-bench.XXXXXX)

# bench ARGS...: a short run; the table in $TMP/out, the rest in
# $TMP/err; returns the bench's exit status.
bench() {
	timeout 300 "$BENCH" --daemon "$DAEMON" --sizes 16k,1m --mbytes 4 \
		--repeat 1 "$@" >"$TMP/out" 2>"$TMP/err"
}

# 1. the run itself
bench
st=$?
if grep -q '^# dbus-broker: skipped' "$TMP/out"; then
	why=$(grep '^# dbus-broker: skipped' "$TMP/out" | sed 's/^# //')
	if [ "${CI:-}" = true ]; then
		not_ok "dbus-broker is installed (CI=true)" "$why" \
			"scripts/deps.sh installs it"
		finish
	fi
	echo "# $why"
	echo "1..0 # SKIP dbus-broker is not installed (scripts/deps.sh)"
	exit 77
fi
if [ $st -eq 0 ]; then
	ok "large-bench: every message arrived whole, in order and unchanged"
else
	not_ok "large-bench: every message arrived whole, in order and unchanged" \
		"exit status $st"
	diag_file "stdout" "$TMP/out"
	diag_file "stderr" "$TMP/err"
	finish
fi

# 2-3. the rows: "ok NAME" or "bad NAME: why" for each check
python3 - "$TMP/out" >"$TMP/checks" 2>&1 <<'EOF'
import sys

rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    if line.startswith("#") or len(f) < 14 or f[0] == "size":
        continue
    rows[(f[0], f[1])] = f

def number(s):
    try:
        return float(s.split()[0])
    except ValueError:
        return None

bad = []
for size in ("16k", "1m"):
    for path in ("direct", "memfd", "dbus", "mqbus"):
        r = rows.get((size, path))
        if r is None:
            bad.append("%s %s: no row" % (size, path))
            continue
        # msgs/s, MB/s and all (CPU of every process per MB)
        for i, what in ((2, "msgs/s"), (3, "MB/s"), (5, "all")):
            v = number(r[i])
            if v is None or v <= 0:
                bad.append("%s %s: %s is %r" % (size, path, what, r[i]))
        # the brokers' CPU per MB
        if path in ("mqbus", "dbus") and (number(r[4]) or 0) <= 0:
            bad.append("%s %s: broker CPU is %r" % (size, path, r[4]))
        # the round trip, p50 and p99 (not measured through dbus-broker)
        if path != "dbus":
            for i, what in ((6, "rtt p50"), (7, "rtt p99")):
                v = number(r[i])
                if v is None or v <= 0:
                    bad.append("%s %s: %s is %r" % (size, path, what,
                                                    r[i]))
print(("bad rows: " + "; ".join(bad)) if bad else "ok rows")

bad = []
for size in ("16k", "1m"):
    r = rows.get((size, "mqbus"))
    if r is None:
        bad.append("%s: no mqbus row" % size)
        continue
    for i, what in ((8, "xdirect"), (9, "xmemfd"), (10, "xdbus"),
                    (11, "wdirect"), (12, "wmemfd"), (13, "wdbus")):
        v = number(r[i])
        if v is None or v <= 0:
            bad.append("%s mqbus: %s is %r" % (size, what, r[i]))
print(("bad ratios: " + "; ".join(bad)) if bad else "ok ratios")
EOF
for name in rows ratios; do
	line=$(grep -E "^(ok|bad) $name" "$TMP/checks")
	case $name in
	rows) title="direct, memfd, dbus and mqbus rows at 16 KiB and 1 MiB, with figures" ;;
	*) title="mqbus rows carry xdirect, xmemfd, xdbus, wdirect, wmemfd and wdbus" ;;
	esac
	if [ "${line%% *}" = ok ]; then
		ok "$title"
	else
		not_ok "$title" "${line:-no result}"
		diag_file "checks" "$TMP/checks"
		diag_file "stdout" "$TMP/out"
	fi
done

# 4-7. a message a publisher leaves out fails the run
for path in direct memfd mqbus dbus; do
	MQBUS_LARGE_BENCH_SKIP=$path:2 bench --only $path --no-rtt
	st=$?
	if [ $st -eq 1 ] &&
		grep -q "$path: message 2: .*sequence 3" "$TMP/err" &&
		grep -q 'a message lost, cut or out of order' "$TMP/err"; then
		ok "$path: a lost message fails the run"
	else
		not_ok "$path: a lost message fails the run" "exit status $st"
		diag_file "stderr" "$TMP/err"
	fi
done

# 8-11. a byte flipped in the middle of a message (byte 8205 of 16 KiB)
# fails the run: the receiver reads every byte
for path in direct memfd mqbus dbus; do
	MQBUS_LARGE_BENCH_CORRUPT=$path:2 bench --only $path --no-rtt
	st=$?
	if [ $st -eq 1 ] &&
		grep -q "$path: message 2: byte 8205 is " "$TMP/err" &&
		grep -q 'a message corrupted' "$TMP/err"; then
		ok "$path: a corrupted byte fails the run"
	else
		not_ok "$path: a corrupted byte fails the run" \
			"exit status $st"
		diag_file "stderr" "$TMP/err"
	fi
done

finish
