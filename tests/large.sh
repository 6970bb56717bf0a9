#!/bin/sh
# SPDX-License-Identifier: MIT
#
# large.sh - the C integration suite tests/check_large (messages larger
# than a queue message: round trips, interleaving, half messages, quotas,
# receivers' limits, overflow policies) against mqbusd.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_large" "$@"
