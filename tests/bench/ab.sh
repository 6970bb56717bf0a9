#!/bin/bash
# SPDX-License-Identifier: MIT
#
# ab.sh - two mqbusd builds compared in interleaved pairs.
#
#   tests/bench/ab.sh [-n ROUNDS] [-o ONLY] [-w WAKES] DAEMON_A DAEMON_B
#
# Runs mqbus-bench (from the build directory it is called in, or
# $MQBUS_BENCH) with --only ONLY (default pubsub,rtt) and --wake WAKES
# (default notify,poll), pinned to CPU 0, one repetition per run, first
# with DAEMON_A, then DAEMON_B, ROUNDS times (default 5).  The machine's
# speed drifts between runs, so each round gives a ratio B/A per row and
# figure, and the report is the median of those ratios (throughput: msgs/s,
# higher is better; round trips: rtt p50, lower is better; CPU per
# message).  The client library is the same for both: only the daemon
# differs.

set -euo pipefail
ROUNDS=5 ONLY=pubsub,rtt WAKES=notify,poll
while getopts n:o:w: opt; do
	case $opt in
	n) ROUNDS=$OPTARG ;;
	o) ONLY=$OPTARG ;;
	w) WAKES=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 2 ] || { echo "usage: ab.sh [-n N] [-o ROWS] [-w WAKES] DAEMON_A DAEMON_B" >&2; exit 2; }
BENCH=${MQBUS_BENCH:-./tests/bench/mqbus-bench}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for i in $(seq 1 "$ROUNDS"); do
	for side in A B; do
		d=$1
		[ $side = B ] && d=$2
		"$BENCH" --only "$ONLY" --wake "$WAKES" -r 1 -d 500 --pin 0 \
			--json --daemon "$d" >"$OUT/$side.$i.json" 2>/dev/null
	done
done
python3 - "$OUT" "$ROUNDS" "$1" "$2" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def rows(path):
    r = {}
    for line in open(path):
        if line.strip():
            j = json.loads(line)
            r[(j["mode"], j["wake"], j["size"])] = j
    return r
ratios = {}
for i in range(1, rounds + 1):
    a, b = rows(f"{out}/A.{i}.json"), rows(f"{out}/B.{i}.json")
    for k in a:
        if k not in b:
            continue
        for f in ("msgs_per_s", "rtt_p50_us", "daemon_cpu_us_per_msg"):
            if a[k].get(f) and b[k].get(f):
                ratios.setdefault((k, f), []).append(b[k][f] / a[k][f])
print("A = %s\nB = %s\n%d interleaved rounds; median of the per-round "
      "ratios B/A" % (sys.argv[3], sys.argv[4], rounds))
print("%-8s %-7s %5s  %-22s %6s  %s" % ("mode", "wake", "size", "figure",
                                      "B/A", "(min..max)"))
for (k, f), v in sorted(ratios.items()):
    print("%-8s %-7s %5d  %-22s %6.3f  (%.3f..%.3f)" %
          (k[0], k[1], k[2], f, statistics.median(v), min(v), max(v)))
PY
