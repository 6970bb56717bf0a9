#!/bin/bash
# SPDX-License-Identifier: MIT
#
# large-cli.sh - messages larger than a queue message through mqbusctl and
# the real mqbusd: `limits` reports the bus's max_message, `pub -` from
# stdin to `sub`, `call` to `serve --exec` and back (1 MiB both ways),
# and a message over max_message refused with a clear error.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init

LIM=$("$MQBUSCTL" limits)
mqb_like "limits without a daemon: max_message unknown" \
	"$(printf '%s\n' "$LIM" | sed -n 's/^max_message: *//p')" '^unknown'

printf '[bus]\nmax_message = 2000000\n' >"$MQB_TMP/mqbusd.conf"
if ! mqb_daemon_start notify -c "$MQB_TMP/mqbusd.conf"; then
	mqb_bail "mqbusd starts and sends READY=1"
fi
mqb_ok "mqbusd starts and sends READY=1"

LIM=$("$MQBUSCTL" limits)
mqb_is "limits reports the bus's max_message" \
	"$(printf '%s\n' "$LIM" | sed -n 's/^max_message: *//p')" 2000000
mqb_is "limits --json has it too" \
	"$("$MQBUSCTL" limits --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_message"])' 2>&1)" \
	2000000

# 1.5 MB of text, so that sub prints it as it is
IN=$MQB_TMP/big.in
head -c 1125000 /dev/urandom | base64 -w0 >"$IN"
mqb_is "the input is 1.5 MB" "$(wc -c <"$IN")" 1500000

OUT=$MQB_TMP/sub.out
mqb_sub_start "$OUT" big/x -n 1 -t 10000 ||
	mqb_notok "subscriber subscribed" "$(cat "$OUT.err")"
mqb_check_status "pub - of 1.5 MB from stdin" 0 "$MQBUSCTL" pub big/x - \
	<"$IN"
mqb_wait_pid "$MQB_SPID" 10000
mqb_is "sub exits 0" "$?" 0
printf 'big/x %s\n' "$(cat "$IN")" >"$MQB_TMP/want"
cmp -s "$MQB_TMP/want" "$OUT"
mqb_true "sub prints the whole message, byte for byte" $? \
	"got $(wc -c <"$OUT") bytes: $(head -c 100 "$OUT")"

"$MQBUSCTL" serve svc/big --exec cat -n 1 >"$MQB_TMP/serve.out" \
	2>"$MQB_TMP/serve.err" &
SPID=$!
mqb_track "$SPID"
mqb_wait_for 5000 sh -c "[ \"\$(\"$MQBUSCTL\" stats |
	sed -n 's/^subscriptions=//p')\" = 1 ]"
"$MQBUSCTL" call svc/big - -t 10000 <"$IN" >"$MQB_TMP/call.out"
mqb_is "call with a 1.5 MB request exits 0" "$?" 0
mqb_wait_pid "$SPID" 10000
mqb_is "serve --exec answers and exits 0" "$?" 0
printf '%s\n' "$(cat "$IN")" | cmp -s - "$MQB_TMP/call.out"
mqb_true "the 1.5 MB reply comes back whole" $? \
	"got $(wc -c <"$MQB_TMP/call.out") bytes" \
	"serve: $(cat "$MQB_TMP/serve.err")"

head -c 2000001 /dev/zero | "$MQBUSCTL" pub big/x - 2>"$MQB_TMP/over.err"
mqb_is "pub over max_message fails" "$?" 1
mqb_like "and says why" "$(cat "$MQB_TMP/over.err")" \
	"larger than the bus's max_message \\(2000000 bytes\\)"

# memory files are on by default: each came as one, none in pieces
mqb_is "the daemon took 3 large messages as memory files (pub, call, reply)" \
	"$(mqb_stat shm_received)" 3
mqb_is "and passed 3 on as memory files (sub, serve, call)" \
	"$(mqb_stat shm_sent)" 3
mqb_is "none came in pieces" "$(mqb_stat large_reassembled)" 0
mqb_is "and holds nothing for them now" "$(mqb_stat large_held)" 0

mqb_daemon_stop
mqb_is "mqbusd exits 0" "$MQB_DSTATUS" 0
mqb_is "no queue of the bus is left" "$(mqb_queues "$BUS" | tr '\n' ' ')" ""

mqb_done
