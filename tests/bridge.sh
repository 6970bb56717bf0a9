#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bridge.sh - the MQTT bridge of mqbusd ([bridge NAME] in mqbusd.conf(5))
# against a real mosquitto that the test starts on 127.0.0.1, on a free
# port, with a config of its own, and mosquitto_sub/mosquitto_pub as the
# remote clients.
#
# Out and in mappings with their prefixes; what an unmapped topic does
# (nothing); the MQTT 5 user properties of what goes out and the identity
# of what comes in (the bridge's user, its client id, the mapping's
# priority); the remote origin (what the remote side claims of its
# sender) to the receivers that asked, and garbage or too many user
# properties from a hostile publisher left out; the access policy on what
# comes in; loop prevention (nothing
# that came in goes out again, nothing that went out comes back); QoS 1
# across a broker restart, the bounded queue and its overflow while the
# broker is away, with local delivery going on meanwhile; the capped
# back-off; an MQTT 3.1.1 bridge (payload only); config errors.
#
# Needs mosquitto and mosquitto-clients: skipped without them, except
# under CI=true, where that is a failure (CI installs them, see
# scripts/deps.sh).

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_need_commands "mosquitto and mosquitto-clients" \
	mosquitto mosquitto_sub mosquitto_pub python3

mqb_init

PORT=$(mqb_free_port)
MOSQ_LOG=$MQB_TMP/mosquitto.log
MOSQ_PID=
cat >"$MQB_TMP/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
user $(id -un)
persistence true
persistence_location $MQB_TMP/
autosave_interval 0
log_dest file $MOSQ_LOG
log_type all
EOF

broker_start() {
	mosquitto -c "$MQB_TMP/mosquitto.conf" 2>>"$MQB_TMP/mosquitto.err" &
	MOSQ_PID=$!
	mqb_track "$MOSQ_PID"
	mqb_wait_for 5000 grep -q "Opening ipv4 listen socket on port $PORT" \
		"$MOSQ_LOG"
}

broker_stop() {
	kill -TERM "$MOSQ_PID" 2>/dev/null
	mqb_wait_pid "$MOSQ_PID" 5000
	MOSQ_PID=
}

# how many times the broker saw client $1 subscribe
subscribes() {
	grep -c "Received SUBSCRIBE from $1\$" "$MOSQ_LOG"
}

# subscribed_more ID N: the broker saw client ID subscribe more than N
# times
subscribed_more() {
	[ "$(subscribes "$1")" -gt "$2" ]
}

# remote_sub OUT ID [mosquitto_sub args]: a remote subscriber with client
# id ID (MQTT 5, "topic|payload|properties" lines) started in the
# background; waits until the broker has its subscription.  Sets RPID.
remote_sub() {
	local out=$1 id=$2 before
	shift 2
	before=$(subscribes "$id")
	mosquitto_sub -h 127.0.0.1 -p "$PORT" -V mqttv5 -i "$id" \
		-F '%t|%p|%P' "$@" >"$out" 2>"$out.err" &
	RPID=$!
	mqb_track "$RPID"
	mqb_wait_for 5000 subscribed_more "$id" "$before"
}

rpub() {
	mosquitto_pub -h 127.0.0.1 -p "$PORT" -V mqttv5 "$@"
}

stat_is() {
	[ "$(mqb_stat "$1")" = "$2" ]
}

BRIDGE_ID=mqbus-test-$BUS
BRIDGE3_ID=mqbus-test3-$BUS
cat >"$MQB_TMP/mqbusd.conf" <<EOF
[policy]
default = allow
deny = publish user=nobody topic=remote/cmd/secret/#

[bridge b1]
host = 127.0.0.1
port = $PORT
client_id = $BRIDGE_ID
user = nobody
queue = 5
reconnect_min_ms = 100
reconnect_max_ms = 800
out = sensors/# site1 qos=1
out = loop/#
in = cmd/# remote priority=3
in = loop/#

[bridge b3]
host = 127.0.0.1
port = $PORT
client_id = $BRIDGE3_ID
mqtt_version = 3.1.1
out = old/# v3
EOF

broker_start || mqb_bail "mosquitto starts on 127.0.0.1:$PORT" \
	"$(cat "$MQB_TMP/mosquitto.err" "$MOSQ_LOG" 2>/dev/null)"
mqb_ok "mosquitto runs on 127.0.0.1:$PORT"

mqb_daemon_start notify -c "$MQB_TMP/mqbusd.conf" -v ||
	mqb_bail "mqbusd starts with two bridges"
if grep -q "built without MQTT" "$MQB_DERR"; then
	[ "${CI:-}" = true ] && mqb_bail "mqbusd has the MQTT bridge"
	echo "# SKIP: mqbusd was built without the MQTT bridge"
	exit 77
fi
mqb_wait_for 5000 stat_is bridge.b1.connected 1 &&
	mqb_wait_for 5000 stat_is bridge.b3.connected 1
mqb_true "both bridges connect" $? "$("$MQBUSCTL" stats | grep bridge)"
mqb_wait_for 5000 subscribed_more "$BRIDGE_ID" 1
mqb_true "the bridge subscribes its in patterns" $? \
	"$(grep "$BRIDGE_ID" "$MOSQ_LOG")"
mqb_like "the broker saw the in patterns" \
	"$(grep -A3 "SUBSCRIBE from $BRIDGE_ID" "$MOSQ_LOG")" \
	"cmd/# \(QoS 0, No Local\)|cmd/# \(QoS 0"

# ---------------------------------------------------------------- out
R=$MQB_TMP/remote.out
remote_sub "$R" rsub-1 -t 'site1/#' -t 'other/#' -t 'sensors/#' -C 2 ||
	mqb_bail "the remote subscriber subscribes"
"$MQBUSCTL" pub other/x not-mapped
"$MQBUSCTL" pub sensors/t1 hello -p 4 -k k1
"$MQBUSCTL" pub sensors/t2 world
mqb_wait_pid "$RPID" 5000
mqb_is "out: two messages crossed, the unmapped one did not" \
	"$(cut -d'|' -f1,2 "$R")" "site1/sensors/t1|hello
site1/sensors/t2|world"
line=$(head -n 1 "$R")
mqb_like "out: priority and key as user properties" "$line" \
	"mqbus-priority:4 .*mqbus-key:k1 "
mqb_like "out: the sender's uid, pid, user and host" "$line" \
	"mqbus-uid:$(id -u) mqbus-pid:[0-9]+ mqbus-user:$(id -un) mqbus-host:$(hostname) "
mqb_like "out: the bridge's client id as origin" "$line" \
	"mqbus-origin:$BRIDGE_ID\$"
mqb_like "out: qos=1 is QoS 1 at the broker" \
	"$(grep "Received PUBLISH from $BRIDGE_ID" "$MOSQ_LOG" | head -n 1)" \
	"q1, r0, m[0-9]+, 'site1/sensors/t1'"
mqb_is "stats: sent" "$(mqb_stat bridge.b1.sent)" 2

# MQTT 3.1.1: the payload alone
R3=$MQB_TMP/remote3.out
remote_sub "$R3" rsub-3 -t 'v3/#' -C 1 ||
	mqb_bail "the remote subscriber subscribes"
"$MQBUSCTL" pub old/a plain -p 7
mqb_wait_pid "$RPID" 5000
mqb_is "3.1.1: payload only, no properties" "$(cat "$R3")" "v3/old/a|plain|"

# ---------------------------------------------------------------- in
L=$MQB_TMP/local.out
mqb_sub_start "$L" 'remote/#' --json -n 2
rpub -t other/y -m not-mapped
rpub -t cmd/secret/z -m denied
rpub -t cmd/x -m incoming
rpub -t cmd/y -m second -D publish user-property mqbus-priority 9
mqb_wait_pid "$MQB_SPID" 5000
mqb_like "in: mapped topic arrives under the local prefix" \
	"$(head -n 1 "$L")" '"topic":"remote/cmd/x","key":null,"payload":"incoming","priority":3,'
mqb_like "in: published as the bridge's user and client id" \
	"$(head -n 1 "$L")" "\"sender_uid\":$(id -u nobody),\"sender_pid\":$MQB_DPID,\"client_id\":4294967040,"
mqb_like "in: the mapping's priority wins over the sender's" \
	"$(sed -n 2p "$L")" '"topic":"remote/cmd/y",.*"priority":3,'
mqb_is "in: the policy refused one" "$(mqb_stat bridge.b1.refused)" 1
mqb_true "in: the refusal is logged" "$(grep -q 'remote/cmd/secret/z' "$MQB_DERR"; echo $?)" \
	"$(cat "$MQB_DERR")"

# ---------------------------------------------------------------- origin
# the remote sender's identity as the remote side claims it, to the local
# receivers that asked (sub --origin); the others get the plain message
O=$MQB_TMP/origin
mqb_sub_start "$O.json" 'remote/cmd/o/#' --json --origin -n 4
mqb_sub_start "$O.text" 'remote/cmd/o/#' --origin -n 4
mqb_sub_start "$O.plain" 'remote/cmd/o/#' --json -n 4
rpub -t cmd/o/1 -m claimed -D publish user-property mqbus-uid 4321 \
	-D publish user-property mqbus-pid 987 \
	-D publish user-property mqbus-user alice \
	-D publish user-property mqbus-host host-a
rpub -t cmd/o/2 -m bare
# a hostile publisher: a 5000-byte user name, a host name with a space,
# a uid and a pid out of range; then 70 more properties, and after them
# names that would be valid but are past what the bridge reads
junk=()
for i in $(seq 70); do
	junk+=(-D publish user-property "x$i" "$i")
done
rpub -t cmd/o/3 -m garbage \
	-D publish user-property mqbus-user "$(head -c 5000 /dev/zero | tr '\0' u)" \
	-D publish user-property mqbus-host "bad host" \
	-D publish user-property mqbus-uid 4294967295 \
	-D publish user-property mqbus-pid 99999999999 \
	"${junk[@]}" \
	-D publish user-property mqbus-user late \
	-D publish user-property mqbus-pid 5
"$MQBUSCTL" pub remote/cmd/o/4 from-here
for f in json text plain; do
	mqb_wait_for 5000 grep -q 'remote/cmd/o/4' "$O.$f"
done
mqb_like "origin: the claimed uid, pid, user and host, and the bridge" \
	"$(sed -n 1p "$O.json")" \
	'"topic":"remote/cmd/o/1",.*"origin":\{"uid":4321,"pid":987,"user":"alice","host":"host-a","bridge":"b1"\}\}$'
mqb_like "origin: the sender is still the bridge" \
	"$(sed -n 1p "$O.json")" "\"sender_uid\":$(id -u nobody),\"sender_pid\":$MQB_DPID,\"client_id\":4294967040,"
mqb_like "origin: a remote publisher that said nothing: the bridge alone" \
	"$(sed -n 2p "$O.json")" \
	'"topic":"remote/cmd/o/2",.*"origin":\{"uid":null,"pid":null,"user":null,"host":null,"bridge":"b1"\}\}$'
mqb_like "origin: garbage and what is past 64 properties are not said" \
	"$(sed -n 3p "$O.json")" \
	'"topic":"remote/cmd/o/3","key":null,"payload":"garbage",.*"origin":\{"uid":null,"pid":null,"user":null,"host":null,"bridge":"b1"\}\}$'
mqb_like "origin: null for a message published on this host" \
	"$(sed -n 4p "$O.json")" \
	"\"topic\":\"remote/cmd/o/4\",.*\"sender_uid\":$(id -u),.*\"origin\":null\}\$"
mqb_is "origin: as text" "$(cat "$O.text")" \
	"remote/cmd/o/1 claimed (from alice@host-a uid=4321 pid=987 via bridge b1)
remote/cmd/o/2 bare (from ?@? via bridge b1)
remote/cmd/o/3 garbage (from ?@? via bridge b1)
remote/cmd/o/4 from-here"
mqb_is "origin: a receiver that did not ask gets the plain messages" \
	"$(grep -c '"origin"' "$O.plain"):$(grep -c '"payload":"claimed","priority":3,"sender_uid":'"$(id -u nobody)"',' "$O.plain"):$(wc -l <"$O.plain")" \
	"0:1:4"
mqb_is "origin: mqbusd is still there" "$(mqb_stat bridge.b1.connected)" 1

# a message larger than a queue message goes in pieces, its origin with it
head -c 300000 /dev/zero | tr '\0' x >"$O.big"
mqb_sub_start "$O.bigout" 'remote/cmd/big' --json --origin -n 1
rpub -t cmd/big -f "$O.big" -D publish user-property mqbus-user zed
mqb_wait_pid "$MQB_SPID" 10000
mqb_is "origin: a 300000-byte message has it too" \
	"$(python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(len(j["payload"]), j["origin"]["user"], j["origin"]["bridge"])' \
		"$O.bigout" 2>&1)" "300000 zed b1"

# the Python package's Bus(origin=True) and Message.origin, the same way
# (a sanitizer build's libmqbus needs its runtime preloaded, python.sh)
LIBMQBUS=$top_builddir/client/.libs/libmqbus.so
PRELOAD=()
asan=$(ldd "$LIBMQBUS" 2>/dev/null | awk '$1 ~ /^libasan\.so/ { print $3 }')
[ -n "$asan" ] && PRELOAD=(env "LD_PRELOAD=$asan" ASAN_OPTIONS=detect_leaks=0)
MQBUS_LIBRARY=$LIBMQBUS PYTHONPATH=$top_srcdir/python \
	PYTHONDONTWRITEBYTECODE=1 "${PRELOAD[@]}" python3 -c '
import sys, mqbus
with mqbus.Bus(origin=True) as b:
    sub = b.subscribe("remote/cmd/py/#")
    print("ready", flush=True)
    m = sub.get(timeout=5)
    print(m.topic, m.payload.decode(), m.sender_uid, m.origin)
' >"$O.py" 2>&1 &
PYPID=$!
mqb_track "$PYPID"
mqb_wait_for 5000 grep -q ready "$O.py"
rpub -t cmd/py/1 -m snake -D publish user-property mqbus-uid 77 \
	-D publish user-property mqbus-pid 88 \
	-D publish user-property mqbus-user bob \
	-D publish user-property mqbus-host host-p
mqb_wait_pid "$PYPID" 5000
mqb_is "origin: in Python too" "$(tail -n 1 "$O.py")" \
	"remote/cmd/py/1 snake $(id -u nobody) Origin(uid=77, pid=88, user='bob', host='host-p', bridge='b1')"

# ---------------------------------------------------------------- loops
# in and out of bridge b1 both cover loop/#: a local message goes out once
# and is not echoed back (no-local); a remote one comes in once and does
# not go out again
R=$MQB_TMP/loop-remote.out
L=$MQB_TMP/loop-local.out
remote_sub "$R" rsub-loop -t 'loop/#' ||
	mqb_bail "the remote subscriber subscribes"
mqb_sub_start "$L" 'loop/#'
sent=$(mqb_stat bridge.b1.sent)
received=$(mqb_stat bridge.b1.received)
"$MQBUSCTL" pub loop/local L1
rpub -t loop/remote -m R1
mqb_wait_for 5000 grep -q 'loop/remote' "$L"
"$MQBUSCTL" pub loop/end E
mqb_wait_for 5000 grep -q 'loop/end' "$R"
sleep 0.3
mqb_is "loops: the remote side saw each message once" \
	"$(cut -d'|' -f1,2 "$R")" "loop/local|L1
loop/remote|R1
loop/end|E"
mqb_is "loops: the local side saw each message once" \
	"$(grep -c '^loop/' "$L")" 3
mqb_is "loops: what came in did not go out" \
	"$(mqb_stat bridge.b1.sent)" $((sent + 2))
mqb_is "loops: nothing of ours came back" \
	"$(mqb_stat bridge.b1.received)" $((received + 1))
kill "$RPID" "$MQB_SPID" 2>/dev/null

# ---------------------------------------------------------------- broker away
# local_ms N: ms for N local messages on the bridged sensors/rtt, from
# the first publish to the last delivery to a local subscriber
local_ms() {
	local n=$1 t0 t1 i
	mqb_sub_start "$MQB_TMP/rtt.out" sensors/rtt -n "$n"
	t0=$(mqb_now_ms)
	for i in $(seq "$n"); do
		"$MQBUSCTL" pub sensors/rtt "$i"
	done
	mqb_wait_pid "$MQB_SPID" 10000 || return 1
	t1=$(mqb_now_ms)
	[ "$(wc -l <"$MQB_TMP/rtt.out")" = "$n" ] || return 1
	echo $((t1 - t0))
}
up_ms=$(local_ms 20)
mqb_wait_for 5000 stat_is bridge.b1.queued 0
# a persistent QoS 1 subscriber, then the broker goes
R=$MQB_TMP/q1.out
remote_sub "$R.first" rsub-q1 -c -q 1 -t 'site1/#' -C 1 ||
	mqb_bail "the persistent subscriber subscribes"
"$MQBUSCTL" pub sensors/first F
mqb_wait_pid "$RPID" 5000
mqb_like "qos 1: the persistent subscriber got the first" \
	"$(cat "$R.first")" "site1/sensors/first"
L=$MQB_TMP/away-local.out
mqb_sub_start "$L" 'sensors/#'
broker_stop
mqb_wait_for 5000 stat_is bridge.b1.connected 0
mqb_true "the bridge sees the broker gone" $?
for i in 1 2 3 4 5 6 7; do
	"$MQBUSCTL" pub "sensors/q$i" "m$i"
done
seven_local() {
	[ "$(grep -c '^sensors/q' "$L")" = 7 ]
}
mqb_wait_for 5000 seven_local
mqb_true "away: local delivery goes on (7 of 7)" $? "$(cat "$L")"
mqb_is "away: the queue holds 5" "$(mqb_stat bridge.b1.queued)" 5
mqb_is "away: 2 dropped" "$(mqb_stat bridge.b1.dropped)" 2
mqb_like "away: the overflow is logged" "$(cat "$MQB_DERR")" \
	"bridge b1 dropped [0-9]+ messages: the broker is away, queue full"
# the same 20 local messages with the broker gone, the bridge's queue
# full: the local bus does not wait (each one a new mqbusctl process)
down_ms=$(local_ms 20)
mqb_true "away: 20 local messages delivered (broker up: ${up_ms:-?} ms, down: ${down_ms:-?} ms)" \
	"$([ -n "$down_ms" ] && [ -n "$up_ms" ] &&
		[ "$down_ms" -lt $((3 * up_ms + 2000)) ]; echo $?)"
echo "# local, 20 messages through a bridged topic: broker up ${up_ms} ms, broker down ${down_ms} ms"
mqb_is "away: the queue still holds 5" "$(mqb_stat bridge.b1.queued)" 5
mqb_is "away: 22 dropped now" "$(mqb_stat bridge.b1.dropped)" 22
# back-off: 100, 200, 400, then 800 ms for good
mqb_wait_for 5000 stat_is bridge.b1.retry_ms 800
mqb_true "back-off doubles up to reconnect_max_ms" $? \
	"retry_ms=$(mqb_stat bridge.b1.retry_ms)"
sleep 1.7
mqb_is "back-off stays at the cap" "$(mqb_stat bridge.b1.retry_ms)" 800
mqb_is "one journal entry for the outage, not one per try" \
	"$(grep -c 'bridge b1: no connection to' "$MQB_DERR")" 1
mqb_like "the retries are there in the debug log" \
	"$(grep -c 'bridge b1: .*next try in 800 ms' "$MQB_DERR")" '^[2-9]|[1-9][0-9]'

broker_start || mqb_bail "mosquitto starts again"
mqb_wait_for 5000 stat_is bridge.b1.connected 1
mqb_true "the bridge reconnects" $?
mqb_is "stats: one reconnection" "$(mqb_stat bridge.b1.reconnects)" 1
mqb_is "stats: nothing more dropped" "$(mqb_stat bridge.b1.dropped)" 22
mqb_wait_for 5000 stat_is bridge.b1.queued 0
mqb_true "the queue drains" $? "queued=$(mqb_stat bridge.b1.queued)"
remote_sub "$R" rsub-q1 -c -q 1 -t 'site1/#' -C 5 ||
	mqb_bail "the persistent subscriber comes back"
mqb_wait_pid "$RPID" 5000
mqb_is "qos 1: the 5 held messages crossed, in order" \
	"$(cut -d'|' -f1,2 "$R")" "site1/sensors/q1|m1
site1/sensors/q2|m2
site1/sensors/q3|m3
site1/sensors/q4|m4
site1/sensors/q5|m5"

# the broker killed outright: the same
kill -KILL "$MOSQ_PID"
mqb_wait_pid "$MOSQ_PID" 5000
mqb_wait_for 10000 stat_is bridge.b1.connected 0
mqb_true "a killed broker is noticed" $?
mqb_check "local publishing does not wait for the broker" \
	timeout 2 "$MQBUSCTL" pub sensors/after-kill K
"$MQBUSCTL" stats | grep '^bridge' | sed 's/^/# /'

mqb_daemon_stop
mqb_is "mqbusd stops cleanly with its broker gone" "$MQB_DSTATUS" 0

# ---------------------------------------------------------------- auth, TLS
# a second broker: anonymous on P1, a password on P2, TLS on P3
P1=$(mqb_free_port)
P2=$(mqb_free_port)
P3=$(mqb_free_port)
T=$MQB_TMP/tls
mkdir -p "$T"
(
	cd "$T" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout ca.key -out ca.crt -days 2 \
			-subj /CN=mqbus-test-ca &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout server.key -out server.csr \
			-subj /CN=127.0.0.1 &&
		printf 'subjectAltName=IP:127.0.0.1\n' >san.ext &&
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key \
			-CAcreateserial -days 2 -extfile san.ext -out server.crt
) >"$MQB_TMP/openssl.log" 2>&1 ||
	mqb_bail "a test CA and server certificate" "$(cat "$MQB_TMP/openssl.log")"
mosquitto_passwd -b -c "$MQB_TMP/passwd" bridgeuser s3cret ||
	mqb_bail "mosquitto_passwd makes a password file"
printf 's3cret\n' >"$MQB_TMP/bridge.pw"
printf 'wrong\n' >"$MQB_TMP/bad.pw"
MOSQ_LOG=$MQB_TMP/mosquitto2.log
cat >"$MQB_TMP/mosquitto.conf" <<MOSQ
per_listener_settings true
user $(id -un)
log_dest file $MOSQ_LOG
log_type all
listener $P1 127.0.0.1
allow_anonymous true
listener $P2 127.0.0.1
allow_anonymous false
password_file $MQB_TMP/passwd
listener $P3 127.0.0.1
allow_anonymous true
cafile $T/ca.crt
certfile $T/server.crt
keyfile $T/server.key
MOSQ
PORT=$P3 broker_start || mqb_bail "the second mosquitto starts" \
	"$(cat "$MQB_TMP/mosquitto.err" "$MOSQ_LOG" 2>/dev/null)"

# auth_conf [QUEUE]: the bridges; with QUEUE, tls gets another queue
# size and bad goes
auth_conf() {
	cat <<CONF
[bridge plain]
host = 127.0.0.1
port = $P1
client_id = plain-$BUS
out = plain/#

[bridge auth]
host = 127.0.0.1
port = $P2
client_id = auth-$BUS
username = bridgeuser
password_file = $MQB_TMP/bridge.pw
out = auth/#

[bridge tls]
host = 127.0.0.1
port = $P3
client_id = tls-$BUS
cafile = $T/ca.crt
queue = ${1:-100}
out = tls/#
CONF
	if [ -z "${1:-}" ]; then
		cat <<CONF

[bridge bad]
host = 127.0.0.1
port = $P2
client_id = bad-$BUS
username = bridgeuser
password_file = $MQB_TMP/bad.pw
reconnect_min_ms = 100
out = bad/#
CONF
	fi
}
auth_conf >"$MQB_TMP/auth.conf"
mqb_daemon_start notify -c "$MQB_TMP/auth.conf" -v ||
	mqb_bail "mqbusd starts with four bridges"
mqb_wait_for 5000 stat_is bridge.auth.connected 1
mqb_true "a password_file's password is accepted" $? \
	"$(grep -i bridge "$MQB_DERR")"
mqb_wait_for 5000 stat_is bridge.tls.connected 1
mqb_true "TLS with cafile connects (port $P3)" $? \
	"$(grep -i bridge "$MQB_DERR")"
mqb_wait_for 5000 grep -Eq "bridge bad: no connection to .*refused the connection: Not authori[sz]ed" "$MQB_DERR"
mqb_true "a wrong password is refused and said so" $? \
	"$(grep -i bridge "$MQB_DERR")"
mqb_is "the refused bridge is not connected" \
	"$(mqb_stat bridge.bad.connected)" 0
R=$MQB_TMP/tls.out
mosquitto_sub -h 127.0.0.1 -p "$P3" --cafile "$T/ca.crt" -V mqttv5 \
	-i rsub-tls -t 'tls/#' -C 1 -F '%t|%p' >"$R" 2>&1 &
RPID=$!
mqb_track "$RPID"
mqb_wait_for 5000 grep -q "Received SUBSCRIBE from rsub-tls" "$MOSQ_LOG"
"$MQBUSCTL" pub tls/x over-tls
mqb_wait_pid "$RPID" 5000
mqb_is "a message crosses over TLS" "$(cat "$R")" "tls/x|over-tls"

# reload: plain and auth unchanged (their connection stays), tls changed
# (reconnects), bad gone
connects() {
	grep -c "New client connected from .* as $1-$BUS" "$MOSQ_LOG"
}
tls_reconnected() {
	[ "$(connects tls)" -gt "$before_tls" ]
}
before_plain=$(connects plain)
before_tls=$(connects tls)
auth_conf 7 >"$MQB_TMP/auth.conf"
kill -HUP "$MQB_DPID"
mqb_wait_for 5000 grep -q "reloaded $MQB_TMP/auth.conf" "$MQB_DERR"
mqb_true "reload" $?
mqb_wait_for 5000 tls_reconnected
mqb_true "reload: the changed bridge reconnects" $?
mqb_wait_for 5000 stat_is bridge.tls.connected 1
mqb_true "reload: and is connected again" $?
mqb_is "reload: an unchanged one keeps its connection" \
	"$(connects plain)" "$before_plain"
mqb_is "reload: the removed one is gone from the stats" \
	"$("$MQBUSCTL" stats | grep -c '^bridge\.bad\.')" 0
mqb_is "reload: four bridges became three, all connected" \
	"$("$MQBUSCTL" stats | grep -c '^bridge\..*\.connected=1')" 3
mqb_daemon_stop
mqb_is "mqbusd stops cleanly" "$MQB_DSTATUS" 0
mqb_like "the broker saw the bridges say goodbye" \
	"$(grep "Received DISCONNECT from auth-$BUS" "$MOSQ_LOG")" DISCONNECT
broker_stop

# ---------------------------------------------------------------- config
bad_config() {
	local name=$1 want=$2 f=$MQB_TMP/bad.conf
	cat >"$f"
	mqb_check_status "config: $name" 1 "$MQBUSD" -b "$(mqb_new_bus)" -c "$f"
	mqb_like "config: $name, said so" "$MQB_ERR" "$want"
}
bad_config "3.1.1 echo refused" "in = a/# takes back what out = a/#" <<EOF
[bridge x]
host = 127.0.0.1
mqtt_version = 3.1.1
out = a/#
in = a/#
EOF
bad_config "no host" "\[bridge x\]: no host" <<EOF
[bridge x]
out = a/#
EOF
bad_config "unknown key" "bad.conf:3: unknown key 'hots' in \[bridge x\]" <<EOF
[bridge x]
host = h
hots = h
EOF
bad_config "qos 2" "bad.conf:3: 'qos=2': the bridge sends and takes QoS 0 or 1" <<EOF
[bridge x]
host = h
out = a/# qos=2
EOF
bad_config "bad name" "bad.conf:1: 'a/b' is not a valid bridge name" <<EOF
[bridge a/b]
EOF
bad_config "unreadable password file" "password_file /nonexistent" <<EOF
[bridge x]
host = 127.0.0.1
username = u
password_file = /nonexistent
out = a/#
EOF

mqb_done
