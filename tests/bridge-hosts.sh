#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bridge-hosts.sh - two hosts sharing topics through one MQTT broker.
#
# The test runs in a network namespace of its own, where mosquitto
# listens; hosts a and b are two more network namespaces, each with its
# own IPC namespace, mqueue mount and host name, joined to the broker's
# namespace by a veth pair (10.77.1.0/24 and 10.77.2.0/24).  Each host
# runs its own mqbusd with a [bridge] to the broker, and mqbusctl there.
#
# A message published on a reaches a subscriber on b with its priority,
# as b's bridge identity; the broker's subscribers see a's sender in the
# MQTT 5 user properties, and so does a subscriber on b that asked for
# remote origins (sub --origin: a's publisher's uid, pid, user and host),
# while one that did not ask gets the plain message; both hosts' mappings overlap on shared/#, and a
# message published there crosses once and never comes back.
#
# Needs root, unshare, nsenter, ip (iproute2) and mosquitto: skipped
# without them, except under CI=true (CI installs them, scripts/deps.sh).

missing=
for c in mosquitto mosquitto_sub ip nsenter unshare python3; do
	command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
[ "$(id -u)" = 0 ] || missing="$missing root"
if [ -n "$missing" ]; then
	why="missing:$missing"
	if [ "${CI:-}" = true ]; then
		echo "not ok 1 - the tools are there ($why)"
		echo "1..1"
		exit 1
	fi
	echo "# SKIP: $why"
	exit 77
fi

# a network namespace of our own for the broker and the veth ends
if [ -z "${MQB_BRIDGE_NETNS:-}" ]; then
	MQB_BRIDGE_NETNS=1 exec unshare -n bash "$0" "$@"
fi

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
mqb_init
ip link set lo up
# nsenter -m starts in /: the programs by absolute path
MQBUSD=$(realpath "$MQBUSD")
MQBUSCTL=$(realpath "$MQBUSCTL")

# host H N: a holder process in fresh net, IPC, mount and UTS namespaces
# with /dev/mqueue mounted and host name H, linked to us by veth vH/eH on
# 10.77.N.0/24 (we are .1, it is .2).  Sets HOLDER_H.
host() {
	local h=$1 n=$2 pid
	unshare -n -i -m -u --propagation private sh -c \
		"mount -t mqueue none /dev/mqueue && hostname host-$h &&
		 exec sleep 100000" &
	pid=$!
	mqb_track "$pid"
	mqb_wait_for 5000 in_ns_is_ready "$pid" "$h" || return 1
	ip link add "v$h" type veth peer name "e$h" netns "$pid" || return 1
	ip addr add "10.77.$n.1/24" dev "v$h" && ip link set "v$h" up ||
		return 1
	nsenter -t "$pid" -n sh -c "ip link set lo up &&
		ip addr add 10.77.$n.2/24 dev e$h && ip link set e$h up" ||
		return 1
	printf -v "HOLDER_$h" %s "$pid"
}

# its host name is set once its namespaces are made and mqueue mounted
in_ns_is_ready() {
	[ "$(nsenter -t "$1" -u hostname 2>/dev/null)" = "host-$2" ]
}

# on H CMD...: runs CMD on host H (its namespaces)
on() {
	local var=HOLDER_$1
	shift
	nsenter -t "${!var}" -n -i -m -u "$@"
}

# on_bg H CMD...: the same in the background, $! being CMD's own pid
# (so that the exit trap kills it, not a subshell above it)
on_bg() {
	local var=HOLDER_$1
	shift
	exec nsenter -t "${!var}" -n -i -m -u "$@"
}

host_stat() {
	on "$1" "$MQBUSCTL" stats 2>/dev/null | sed -n "s/^$2=//p"
}

host_stat_is() {
	[ "$(host_stat "$1" "$2")" = "$3" ]
}

host a 1 || mqb_bail "host a is set up"
host b 2 || mqb_bail "host b is set up"
mqb_ok "hosts a and b: own network, IPC and mount namespaces, veth links"

MOSQ_LOG=$MQB_TMP/mosquitto.log
cat >"$MQB_TMP/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
user $(id -un)
listener 1883 10.77.1.1
listener 1883 10.77.2.1
log_dest file $MOSQ_LOG
log_type all
EOF
mosquitto -c "$MQB_TMP/mosquitto.conf" 2>"$MQB_TMP/mosquitto.err" &
mqb_track $!
mqb_wait_for 5000 grep -q "Opening ipv4 listen socket on port 1883" \
	"$MOSQ_LOG" || mqb_bail "mosquitto starts" \
	"$(cat "$MQB_TMP/mosquitto.err" "$MOSQ_LOG" 2>/dev/null)"
sleep 0.2
mqb_ok "mosquitto listens on 10.77.1.1 and 10.77.2.1"

# host_conf H N: the config of host H
host_conf() {
	cat >"$MQB_TMP/$1.conf" <<EOF
[bridge site]
host = 10.77.$2.1
client_id = bridge-$1
reconnect_min_ms = 100
reconnect_max_ms = 1000
out = sensors/# hosts/$1 qos=1
in = hosts/+/sensors/# remote qos=1
; both hosts send and take shared/#: the overlap must not loop
out = shared/#
in = shared/#
EOF
}

# host_daemon H: mqbusd on host H; sets DPID_H
host_daemon() {
	on_bg "$1" "$MQBUSD" -b "$BUS" -c "$MQB_TMP/$1.conf" -v \
		2>"$MQB_TMP/mqbusd-$1.err" &
	printf -v "DPID_$1" %s $!
	mqb_track $!
	mqb_wait_for 10000 host_stat_is "$1" bridge.site.connected 1
}

host_conf a 1
host_conf b 2
host_daemon a && host_daemon b
mqb_true "both daemons run and their bridges connect" $? \
	"$(cat "$MQB_TMP"/mqbusd-*.err | grep -i bridge)"
# each bridge has subscribed its two in patterns
bridge_subscribed() {
	[ "$(grep -c "Received SUBSCRIBE from bridge-$1\$" "$MOSQ_LOG")" -ge 2 ]
}
mqb_wait_for 5000 bridge_subscribed a && mqb_wait_for 5000 bridge_subscribed b
mqb_true "both bridges subscribed" $?

# a broker-side observer of everything, with the properties
mosquitto_sub -h 10.77.1.1 -V mqttv5 -i observer -t '#' -F '%t|%p|%P' \
	>"$MQB_TMP/observer.out" 2>&1 &
mqb_track $!
mqb_wait_for 5000 grep -q "Received SUBSCRIBE from observer" "$MOSQ_LOG"

# two subscribers on b, one of them asking for remote origins; a
# publisher on a
on_bg b "$MQBUSCTL" sub 'remote/#' --json -n 1 >"$MQB_TMP/b.out" 2>&1 &
SPID=$!
mqb_track "$SPID"
on_bg b "$MQBUSCTL" sub 'remote/#' --json --origin -n 1 \
	>"$MQB_TMP/b-origin.out" 2>&1 &
OPID=$!
mqb_track "$OPID"
mqb_wait_for 5000 host_stat_is b subscriptions 4 # 2 of the bridge, 2
mqb_true "the subscribers on b subscribed" $?
on a "$MQBUSCTL" pub sensors/temp 21.5 -p 4
mqb_wait_pid "$SPID" 5000
mqb_wait_pid "$OPID" 5000
out=$(cat "$MQB_TMP/b.out")
mqb_like "b got a's message under its prefix" "$out" \
	'"topic":"remote/hosts/a/sensors/temp","key":null,"payload":"21.5","priority":4,'
mqb_like "b got it from its bridge" "$out" \
	"\"sender_uid\":0,\"sender_pid\":[0-9]+,\"client_id\":4294967040,"
mqb_wait_for 3000 grep -q '^hosts/a/sensors/temp' "$MQB_TMP/observer.out"
mqb_like "the broker saw a's sender and host" \
	"$(grep '^hosts/a/sensors/temp' "$MQB_TMP/observer.out")" \
	'^hosts/a/sensors/temp\|21.5\|mqbus-priority:4 mqbus-uid:0 mqbus-pid:[0-9]+ mqbus-user:root mqbus-host:host-a mqbus-origin:bridge-a$'
# what the broker saw of a's publisher, b's subscriber that asked sees
claimed=$(grep '^hosts/a/sensors/temp' "$MQB_TMP/observer.out" |
	sed -n 's/.*mqbus-pid:\([0-9]*\) .*/\1/p')
origin=$(cat "$MQB_TMP/b-origin.out")
mqb_like "b's subscriber that asked: a's publisher's uid, pid, user, host" \
	"$origin" \
	"\"origin\":\\{\"uid\":0,\"pid\":${claimed:-none},\"user\":\"root\",\"host\":\"host-a\",\"bridge\":\"site\"\\}\\}\$"
mqb_like "b's subscriber that asked: the sender is still b's bridge" \
	"$origin" \
	'"topic":"remote/hosts/a/sensors/temp",.*"priority":4,"sender_uid":0,"sender_pid":[0-9]+,"client_id":4294967040,'
mqb_is "b's subscriber that did not ask: the plain message" \
	"$(grep -c '"origin"' "$MQB_TMP/b.out")" 0
mqb_is "a sent one" "$(host_stat a bridge.site.sent)" 1
mqb_is "a got none of its own back" "$(host_stat a bridge.site.received)" 0

# shared/#: out and in on both hosts
on_bg b "$MQBUSCTL" sub 'shared/#' -n 2 >"$MQB_TMP/b-shared.out" 2>&1 &
SPID=$!
mqb_track "$SPID"
mqb_wait_for 5000 host_stat_is b subscriptions 3
on a "$MQBUSCTL" pub shared/x once
mqb_wait_for 3000 grep -q 'shared/x' "$MQB_TMP/b-shared.out"
mqb_true "shared: b got a's message" $?
sleep 0.5
mqb_is "shared: b did not send it back out" \
	"$(host_stat b bridge.site.sent)" 0
mqb_is "shared: a took nothing back in" \
	"$(host_stat a bridge.site.received)" 0
mqb_is "shared: the broker saw it once" \
	"$(grep -c "Received PUBLISH from .*'shared/x'" "$MOSQ_LOG")" 1
# and the other way round, which also ends b's subscriber
on b "$MQBUSCTL" pub shared/y back
mqb_wait_pid "$SPID" 5000
mqb_is "shared: b's own message reached its local subscriber once" \
	"$(grep -c 'shared/y' "$MQB_TMP/b-shared.out")" 1
mqb_wait_for 3000 host_stat_is a bridge.site.received 1
mqb_true "shared: a got b's message" $?
mqb_is "shared: a did not send it back out (sent: sensors/temp, shared/x)" \
	"$(host_stat a bridge.site.sent)" 2

on a "$MQBUSCTL" stats | grep '^bridge' | sed 's/^/# a: /'
on b "$MQBUSCTL" stats | grep '^bridge' | sed 's/^/# b: /'
mqb_done
