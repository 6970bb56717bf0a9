#!/bin/sh
# SPDX-License-Identifier: MIT
#
# client.sh - tests/check_client (libmqbus's contract: per-subscription
# handlers, mqbus_topic_match(), the rules of every call) against mqbusd.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_client" "$@"
