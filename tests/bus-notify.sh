#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bus-notify.sh - the C integration suite tests/check_bus against mqbusd with
# the "notify" wake-up back-end (mqbusd --wake=notify).
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=notify
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_bus" "$@"
