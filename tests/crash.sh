#!/bin/sh
# SPDX-License-Identifier: MIT
#
# crash.sh - the C integration suite tests/check_crash: the daemon
# SIGKILLed twice under four publishers and four subscribers, and nothing
# that was in the clients' queues is lost.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_crash" "$@"
