#!/bin/sh
# SPDX-License-Identifier: MIT
#
# delivery.sh - the C integration suite tests/check_delivery (timers,
# retained values, slow-consumer policies) against mqbusd.  The wake-up
# back-end does not change what these test, so one run, with the default.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_delivery" "$@"
