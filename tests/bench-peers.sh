#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench-peers.sh - the peer rows of mqbus-bench run and check every
# message.
#
# Runs `mqbus-bench --only peers` with a few hundred messages per row and
# one repetition: pubsub at 64 and 1024 bytes, fanout to 16 and rtt at
# 64 bytes, each through mqbusd, dbus-broker and mosquitto.  Then
# `--only bridge` the same way: pubsub with and without an idle MQTT
# bridge, and through the bridge to a subscriber at mosquitto beside
# mosquitto's own client to client.  Checks that
# every peer row ran and accounts for every message (the bench itself
# fails a row on the first lost, reordered or damaged one; here each
# subscriber must also have received every message published), that each
# mqbus row carries its ratios to both peers and its targets, and, with
# MQBUS_BENCH_PEER_DROP making a peer's publisher leave one message out,
# that the bench notices the loss and fails.
#
# The peers must be installed (dbus-broker, mosquitto, libmosquitto-dev
# when configure ran; scripts/deps.sh installs them): if they are not,
# the test fails under CI=true and is skipped (77) elsewhere.
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
BENCH=$top_builddir/tests/bench/mqbus-bench
COUNT=400

. "$top_srcdir/tests/tap.sh"
TMP=

cleanup() {
	trap - EXIT
	[ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT

if [ ! -x "$BENCH" ]; then
	not_ok "mqbus-bench is built" "no $BENCH"
	finish
fi
TMP=$(mktemp -d /tmp/mqbus-bench-peers.XXXXXX)

# bench ARGS...: runs the peer rows (or with --only bridge the bridge
# rows); JSON rows in $TMP/out, the rest in $TMP/err; returns the bench's
# exit status.
bench() {
	timeout 600 "$BENCH" --only peers --count "$COUNT" --repeat 1 --json \
		"$@" >"$TMP/out" 2>"$TMP/err"
}

# 1. the run itself
bench
st=$?
if grep -q 'skipped:' "$TMP/err"; then
	why=$(grep 'skipped:' "$TMP/err" | sed 's/^# //')
	if [ "${CI:-}" = true ]; then
		not_ok "dbus-broker and mosquitto are installed (CI=true)" \
			"$why" "scripts/deps.sh installs them"
		finish
	fi
	echo "# $why"
	echo "1..0 # SKIP a peer is not installed (scripts/deps.sh)"
	exit 77
fi
if [ $st -eq 0 ]; then
	ok "mqbus-bench --only peers: every message arrived intact and in order"
else
	not_ok "mqbus-bench --only peers: every message arrived intact and in order" \
		"exit status $st"
	diag_file "stderr" "$TMP/err"
	finish
fi

# 2-4. the rows: each check prints "ok NAME" or "bad NAME: why"
python3 - "$TMP/out" "$COUNT" >"$TMP/checks" 2>&1 <<'EOF'
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
count = int(sys.argv[2])
shapes = [("pubsub", 64, 1), ("pubsub", 1024, 1), ("fanout", 64, 16),
          ("rtt", 64, 1)]

def find(mode, size, subs):
    m = [r for r in rows if r["mode"] == mode and r["size"] == size
         and r["subscribers"] == subs]
    return m[0] if len(m) == 1 else None

for peer in ("dbus", "mqtt"):
    bad = []
    for kind, size, subs in shapes:
        r = find("%s-%s" % (peer, kind), size, subs)
        what = "%s-%s %d B to %d" % (peer, kind, size, subs)
        if r is None:
            bad.append("%s: no such row" % what)
            continue
        if r["messages"] != count:
            bad.append("%s: %s messages, expected %d" %
                       (what, r["messages"], count))
        if not r["msgs_per_s"] or not r["seconds"]:
            bad.append("%s: nothing measured" % what)
            continue
        if r["deliveries"] != count * subs:
            bad.append("%s: %s deliveries, expected %d" %
                       (what, r["deliveries"], count * subs))
        if kind == "rtt" and r["rtt_p50_us"] is None:
            bad.append("%s: no round-trip time" % what)
    print(("bad %s rows: " % peer + "; ".join(bad)) if bad
          else "ok %s rows" % peer)

bad = []
for kind, size, subs in shapes:
    r = find(kind, size, subs)
    if r is None:
        bad.append("%s %d B: no mqbus row" % (kind, size))
        continue
    for key in ("ratio_dbus_broker", "ratio_mosquitto"):
        if not isinstance(r.get(key), (int, float)) or r[key] <= 0:
            bad.append("%s %d B: %s is %r" % (kind, size, key, r.get(key)))
    want = {"pubsub": "xdbus ", "fanout": "xdbus ",
            "rtt": "p50-dbus "}[kind]
    if want not in r["targets"]:
        bad.append("%s %d B: no %starget in %r" %
                   (kind, size, want, r["targets"]))
print(("bad ratios: " + "; ".join(bad)) if bad else "ok ratios")
EOF
for name in "dbus rows" "mqtt rows" "ratios"; do
	line=$(grep -E "^(ok|bad) $name" "$TMP/checks")
	case $name in
	"dbus rows") title="dbus-broker rows: $COUNT messages, every one delivered" ;;
	"mqtt rows") title="mosquitto rows: $COUNT messages, every one delivered" ;;
	*) title="mqbus rows carry ratio_dbus_broker, ratio_mosquitto, targets" ;;
	esac
	if [ "${line%% *}" = ok ]; then
		ok "$title"
	else
		not_ok "$title" "${line:-no result}"
		diag_file "checks" "$TMP/checks"
	fi
done

# 5-6. a message a peer's publisher leaves out fails the row
for peer in dbus-broker mosquitto; do
	MQBUS_BENCH_PEER_DROP=$peer:200 bench
	st=$?
	if [ $st -eq 1 ] &&
		grep -q 'got seq 201, expected 200 (messages lost)' "$TMP/err"; then
		ok "$peer: a lost message fails the row"
	else
		not_ok "$peer: a lost message fails the row" "exit status $st"
		diag_file "stderr" "$TMP/err"
	fi
done

# 7-8. the bridge rows: pubsub with and without an idle MQTT bridge, and
# publisher -> mqbusd -> bridge -> mosquitto -> subscriber beside
# mosquitto's own client to client
bench --only bridge
st=$?
if [ $st -eq 0 ] && ! grep -q 'bridge rows: skipped' "$TMP/err"; then
	ok "mqbus-bench --only bridge: every message arrived intact and in order"
else
	not_ok "mqbus-bench --only bridge: every message arrived intact and in order" \
		"exit status $st"
	diag_file "stderr" "$TMP/err"
	diag_file "stdout" "$TMP/out"
fi
python3 - "$TMP/out" "$COUNT" >"$TMP/checks" 2>&1 <<'EOF'
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
count = int(sys.argv[2])
bad = []

def find(mode, size):
    m = [r for r in rows if r["mode"] == mode and r["size"] == size]
    if len(m) != 1:
        bad.append("%s %d B: %d rows" % (mode, size, len(m)))
        return None
    r = m[0]
    if r["messages"] != count or r["deliveries"] != count:
        bad.append("%s %d B: %s messages, %s deliveries, expected %d" %
                   (mode, size, r["messages"], r["deliveries"], count))
    if not r["msgs_per_s"]:
        bad.append("%s %d B: nothing measured" % (mode, size))
    return r

find("br0-pub", 64)
r = find("br1-pub", 64)
if r and (not isinstance(r["paired_ratio"], (int, float)) or
          "tput " not in r["targets"]):
    bad.append("br1-pub: paired_ratio %r, targets %r" %
               (r["paired_ratio"], r["targets"]))
for size in (64, 1024):
    find("mqtt-pubsub", size)
    r = find("bridge-mqtt", size)
    if r and (not isinstance(r["ratio_mosquitto"], (int, float)) or
              r["ratio_mosquitto"] <= 0):
        bad.append("bridge-mqtt %d B: ratio_mosquitto %r" %
                   (size, r["ratio_mosquitto"]))
print(("bad bridge rows: " + "; ".join(bad)) if bad else "ok bridge rows")
EOF
line=$(grep -E "^(ok|bad) bridge rows" "$TMP/checks")
title="bridge rows: br0-pub, br1-pub (paired ratio, target), mqtt-pubsub and bridge-mqtt, $COUNT messages each, every one delivered"
if [ "${line%% *}" = ok ]; then
	ok "$title"
else
	not_ok "$title" "${line:-no result}"
	diag_file "checks" "$TMP/checks"
fi

finish
