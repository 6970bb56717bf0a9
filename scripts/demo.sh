#!/bin/bash
# SPDX-License-Identifier: MIT
#
# demo.sh - mqbus in one minute: installs what is missing, builds in
# build/, starts mqbusd on a bus "demo", subscribes to demo/#, publishes
# three messages with different priorities, shows what the subscriber got
# and the daemon's counters, stops the daemon and shows that no queue is
# left behind.
#
#   ./scripts/demo.sh            (as root on a fresh Debian 12, or as a
#                                 user once the packages are installed)
# Environment: MQBUS_DEMO_BUS=NAME to use another bus than "demo".

set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build
BUS=${MQBUS_DEMO_BUS:-demo}
export MQBUS_BUS=$BUS

if [ -t 1 ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
# show CMD [ARGS...]: prints the command as one would type it, runs it
show() {
	local a line
	line="\$ $(basename "$1")"
	for a in "${@:2}"; do
		case $a in
		*[!A-Za-z0-9/._=-]*) line="$line '$a'" ;;
		*) line="$line $a" ;;
		esac
	done
	printf '%s\n' "$line"
	"$@"
}

say "dependencies"
"$SRC/scripts/deps.sh"

say "build (in $BUILD)"
cd "$SRC"
if [ ! -x configure ]; then
	show autoreconf -fi 2>&1 | grep -v '^libtoolize\|^configure.ac\|^Makefile.am' || true
fi
mkdir -p "$BUILD"
cd "$BUILD"
if [ ! -f Makefile ]; then
	show ../configure --quiet
fi
printf '$ make -j2\n'
make -j2 >"$SRC/build/make.log" 2>&1 || {
	tail -n 30 "$SRC/build/make.log"
	exit 1
}
MQBUSD=$BUILD/daemon/mqbusd
MQBUSCTL=$BUILD/client/mqbusctl

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqbus-demo.XXXXXX")
DPID=
SPID=
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

say "the queue file system"
if [ "$(stat -f -c %T /dev/mqueue 2>/dev/null)" != mqueue ]; then
	if [ "$(id -u)" = 0 ]; then
		mkdir -p /dev/mqueue
		mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue
		echo "/dev/mqueue was not mounted: mounted it" \
			"(mount -t mqueue mqueue /dev/mqueue) so that queues can be seen"
	else
		echo "/dev/mqueue is not mounted and we are not root:" \
			"the bus works, but its queues cannot be listed"
	fi
else
	echo "/dev/mqueue is mounted"
fi
queues() {
	ls /dev/mqueue 2>/dev/null | grep -E "^$BUS(\.|\$)" || true
}

say "start the daemon on bus '$BUS'"
printf '$ mqbusd -b %s &\n' "$BUS"
"$MQBUSD" -b "$BUS" 2>"$WORK/mqbusd.log" &
DPID=$!
for _ in $(seq 100); do
	"$MQBUSCTL" stats >/dev/null 2>&1 && break
	if ! kill -0 "$DPID" 2>/dev/null; then
		cat "$WORK/mqbusd.log"
		exit 1
	fi
	sleep 0.05
done
"$MQBUSCTL" stats >/dev/null
echo "mqbusd runs as pid $DPID; the bus's queues:"
queues | sed 's/^/  \/dev\/mqueue\//'

say "subscribe to 'demo/#' (three messages, in the background)"
printf "\$ mqbusctl sub 'demo/#' -n 3 &\n"
"$MQBUSCTL" sub 'demo/#' -n 3 -t 20000 >"$WORK/sub.out" 2>&1 &
SPID=$!
for _ in $(seq 100); do
	n=$("$MQBUSCTL" stats 2>/dev/null | sed -n 's/^subscriptions=//p')
	[ "${n:-0}" -ge 1 ] && break
	sleep 0.05
done

say "publish three messages"
show "$MQBUSCTL" pub demo/hello 'hello, bus' -p 1
show "$MQBUSCTL" pub demo/disk/sda/temp 41 -p 5
show "$MQBUSCTL" pub demo/alert 'disk hot' -p 10

say "what the subscriber printed"
st=0
wait "$SPID" || st=$?
SPID=
cat "$WORK/sub.out"
echo "(subscriber exit status $st)"

say "the daemon's counters"
show "$MQBUSCTL" stats

say "stop the daemon (SIGTERM)"
printf '$ kill -TERM %s\n' "$DPID"
kill -TERM "$DPID"
st=0
wait "$DPID" || st=$?
DPID=
echo "mqbusd exited with status $st; its log:"
sed 's/^/  /' "$WORK/mqbusd.log"

say "queues of bus '$BUS' left in /dev/mqueue"
left=$(queues)
if [ -z "$left" ]; then
	echo "none"
else
	echo "$left"
	exit 1
fi
