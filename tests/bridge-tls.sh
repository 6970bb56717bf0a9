#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bridge-tls.sh - the MQTT bridge over TLS with a client certificate,
# against a real mosquitto whose TLS listener on 127.0.0.1 requires one
# (require_certificate true).
#
# openssl makes, for the run only, a CA, a server certificate for
# 127.0.0.1 and localhost, and a client certificate; and a second,
# unrelated CA with a client certificate of its own.  One mqbusd runs four
# bridges to the same listener:
#   good     cafile + certfile + keyfile of the right CA: connects, and
#            messages cross both ways;
#   nocert   cafile only: the broker refuses the handshake;
#   othercert  a client certificate of the other CA: refused too;
#   wrongca  the other CA as cafile: the bridge refuses the broker.
# Each refusal is in the journal (stderr here) with OpenSSL's reason and in
# `mqbusctl stats` (bridge.NAME.error); the local bus goes on meanwhile.
# Config errors: a keyfile without a certfile, an unreadable cafile.
#
# Needs mosquitto, mosquitto-clients and openssl: skipped without them,
# except under CI=true, where that is a failure (scripts/deps.sh).

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_need_commands "mosquitto, mosquitto-clients and openssl" \
	mosquitto mosquitto_sub mosquitto_pub openssl python3

mqb_init

# ---------------------------------------------------------------- certificates
T=$MQB_TMP/pki
mkdir -p "$T"
# key NAME: a P-256 key (fast to make, small)
key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$T/$1.key"
}
# ca NAME: a self-signed CA
ca() {
	key "$1" &&
		openssl req -x509 -new -key "$T/$1.key" -out "$T/$1.crt" \
			-days 2 -subj "/CN=mqbus-test-$1"
}
# cert NAME CA EXTFILE-LINE: a certificate signed by CA
cert() {
	key "$1" &&
		openssl req -new -key "$T/$1.key" -out "$T/$1.csr" \
			-subj "/CN=mqbus-test-$1" &&
		printf '%s\n' "$3" >"$T/$1.ext" &&
		openssl x509 -req -in "$T/$1.csr" -CA "$T/$2.crt" \
			-CAkey "$T/$2.key" -CAcreateserial -days 2 \
			-extfile "$T/$1.ext" -out "$T/$1.crt"
}
{
	ca ca &&
		cert server ca "subjectAltName=IP:127.0.0.1,DNS:localhost" &&
		cert client ca "extendedKeyUsage=clientAuth" &&
		cert remote ca "extendedKeyUsage=clientAuth" &&
		ca other &&
		cert stranger other "extendedKeyUsage=clientAuth"
} >"$MQB_TMP/openssl.log" 2>&1 ||
	mqb_bail "openssl makes the test CAs and certificates" \
		"$(cat "$MQB_TMP/openssl.log")"
mqb_ok "openssl made two CAs, a server and three client certificates"

# ---------------------------------------------------------------- broker
PORT=$(mqb_free_port)
MOSQ_LOG=$MQB_TMP/mosquitto.log
cat >"$MQB_TMP/mosquitto.conf" <<EOF
user $(id -un)
log_dest file $MOSQ_LOG
log_type all
listener $PORT 127.0.0.1
allow_anonymous true
cafile $T/ca.crt
certfile $T/server.crt
keyfile $T/server.key
require_certificate true
EOF
mosquitto -c "$MQB_TMP/mosquitto.conf" 2>"$MQB_TMP/mosquitto.err" &
MOSQ_PID=$!
mqb_track "$MOSQ_PID"
mqb_wait_for 5000 grep -qs "Opening ipv4 listen socket on port $PORT" \
	"$MOSQ_LOG" ||
	mqb_bail "mosquitto starts with a TLS listener on 127.0.0.1:$PORT" \
		"$(cat "$MQB_TMP/mosquitto.err" "$MOSQ_LOG" 2>/dev/null)"
mqb_ok "mosquitto requires a client certificate on 127.0.0.1:$PORT"

# the remote clients: the client certificate "remote" of the right CA
rtls() {
	echo --cafile "$T/ca.crt" --cert "$T/remote.crt" --key "$T/remote.key"
}

# remote_sub OUT ID TOPIC N: a remote subscriber in the background, until
# the broker has its subscription.  Sets RPID.
remote_sub() {
	mosquitto_sub -h 127.0.0.1 -p "$PORT" $(rtls) -V mqttv5 -i "$2" \
		-t "$3" -C "$4" -F '%t|%p' >"$1" 2>"$1.err" &
	RPID=$!
	mqb_track "$RPID"
	mqb_wait_for 5000 grep -q "Received SUBSCRIBE from $2\$" "$MOSQ_LOG"
}

stat_is() {
	[ "$(mqb_stat "$1")" = "$2" ]
}

# ---------------------------------------------------------------- bridges
# bridge NAME [KEY = VALUE lines]: a section to our TLS listener
bridge() {
	local name=$1
	shift
	printf '[bridge %s]\nhost = 127.0.0.1\nport = %s\nclient_id = %s-%s\n' \
		"$name" "$PORT" "$name" "$BUS"
	printf 'reconnect_min_ms = 200\nreconnect_max_ms = 400\n'
	printf '%s\n' "$@"
	printf '\n'
}
{
	bridge good "cafile = $T/ca.crt" "certfile = $T/client.crt" \
		"keyfile = $T/client.key" "out = tls/out/#" "in = tls/in/#"
	bridge nocert "cafile = $T/ca.crt" "out = nocert/#"
	bridge othercert "cafile = $T/ca.crt" "certfile = $T/stranger.crt" \
		"keyfile = $T/stranger.key" "out = othercert/#"
	bridge wrongca "cafile = $T/other.crt" "certfile = $T/client.crt" \
		"keyfile = $T/client.key" "out = wrongca/#"
} >"$MQB_TMP/mqbusd.conf"

mqb_daemon_start notify -c "$MQB_TMP/mqbusd.conf" -v ||
	mqb_bail "mqbusd starts with four TLS bridges" "$(cat "$MQB_DERR")"
if grep -q "built without MQTT" "$MQB_DERR"; then
	[ "${CI:-}" = true ] && mqb_bail "mqbusd has the MQTT bridge"
	echo "# SKIP: mqbusd was built without the MQTT bridge"
	exit 77
fi

mqb_wait_for 5000 stat_is bridge.good.connected 1
mqb_true "cafile + client certificate: connected" $? \
	"$("$MQBUSCTL" stats | grep '^bridge'; grep -i bridge "$MQB_DERR")"
mqb_like "the broker saw the bridge's TLS connection" \
	"$(grep "New client connected from .* as good-$BUS" "$MOSQ_LOG")" \
	"as good-$BUS"

# out: local -> broker
R=$MQB_TMP/remote.out
remote_sub "$R" rsub-tls 'tls/out/#' 1 ||
	mqb_bail "the remote subscriber subscribes over TLS" "$(cat "$R.err")"
"$MQBUSCTL" pub tls/out/a over-tls-out
mqb_wait_pid "$RPID" 5000
mqb_is "out: a local message reaches the remote subscriber over TLS" \
	"$(cat "$R")" "tls/out/a|over-tls-out"

# in: broker -> local
L=$MQB_TMP/local.out
mqb_wait_for 5000 grep -q "Received SUBSCRIBE from good-$BUS" "$MOSQ_LOG"
mqb_sub_start "$L" 'tls/in/#' -n 1
mosquitto_pub -h 127.0.0.1 -p "$PORT" $(rtls) -V mqttv5 -t tls/in/b \
	-m over-tls-in
mqb_wait_pid "$MQB_SPID" 5000
mqb_like "in: a remote message reaches the local subscriber over TLS" \
	"$(cat "$L")" "tls/in/b.*over-tls-in"

# ---------------------------------------------------------------- refusals
# refused NAME: the bridge has tried and failed at least twice
refused() {
	[ "$(mqb_stat "bridge.$1.connected")" = 0 ] &&
		[ -n "$(mqb_stat "bridge.$1.error")" ] &&
		[ "$(grep -c "bridge $1: .*next try in" "$MQB_DERR")" -ge 1 ]
}
for b in nocert othercert wrongca; do
	mqb_wait_for 5000 refused "$b"
	mqb_true "$b: not connected, and retrying" $? \
		"$("$MQBUSCTL" stats | grep "^bridge\.$b"; grep "bridge $b" "$MQB_DERR")"
done
mqb_is "none of the three got a session at the broker" \
	"$(grep -Ec "New client connected from .* as (nocert|othercert|wrongca)-$BUS" "$MOSQ_LOG")" 0

# why, in the journal (the first failure) and in the stats (the last)
mqb_like "nocert: the journal says the broker wanted a certificate" \
	"$(grep "bridge nocert: no connection to" "$MQB_DERR")" \
	"no connection to 127.0.0.1:$PORT \\(.*(certificate required|require a client certificate)"
mqb_like "othercert: the journal says the broker did not know its CA" \
	"$(grep "bridge othercert: no connection to" "$MQB_DERR")" \
	"no connection to 127.0.0.1:$PORT \\(.*(unknown ca|accept the client certificate)"
mqb_like "wrongca: the journal says the broker's certificate did not verify" \
	"$(grep "bridge wrongca: no connection to" "$MQB_DERR")" \
	"no connection to 127.0.0.1:$PORT \\(TLS: .*certificate verify failed"
mqb_like "nocert: and so does bridge.nocert.error" \
	"$(mqb_stat bridge.nocert.error)" "certificate required|require a client certificate"
mqb_like "wrongca: and so does bridge.wrongca.error" \
	"$(mqb_stat bridge.wrongca.error)" "certificate verify failed"
mqb_is "good: bridge.good.error is empty while connected" \
	"$(mqb_stat bridge.good.error)" ""
mqb_is "one journal entry per refused bridge, not one per try" \
	"$(grep -c "bridge wrongca: no connection to" "$MQB_DERR")" 1

# the local bus meanwhile
L=$MQB_TMP/local2.out
mqb_sub_start "$L" 'wrongca/#' -n 3
for i in 1 2 3; do
	"$MQBUSCTL" pub "wrongca/x$i" "m$i"
done
mqb_wait_pid "$MQB_SPID" 5000
mqb_is "the local bus is unaffected: 3 of 3 delivered locally" \
	"$(grep -c 'wrongca/x' "$L")" 3
mqb_check "and the good bridge is still connected" stat_is \
	bridge.good.connected 1

mqb_daemon_stop
mqb_is "mqbusd stops cleanly" "$MQB_DSTATUS" 0

# ---------------------------------------------------------------- config
bad_config() {
	local name=$1 want=$2 f=$MQB_TMP/bad.conf
	cat >"$f"
	mqb_check_status "config: $name" 1 "$MQBUSD" -b "$(mqb_new_bus)" -c "$f"
	mqb_like "config: $name, said so" "$MQB_ERR" "$want"
}
bad_config "keyfile without certfile" "certfile and keyfile go together" <<EOF
[bridge x]
host = 127.0.0.1
cafile = $T/ca.crt
keyfile = $T/client.key
out = a/#
EOF
bad_config "unreadable cafile" "\[bridge x\]: TLS files $T/none.crt" <<EOF
[bridge x]
host = 127.0.0.1
cafile = $T/none.crt
out = a/#
EOF

kill -TERM "$MOSQ_PID"
mqb_wait_pid "$MOSQ_PID" 5000
mqb_done
