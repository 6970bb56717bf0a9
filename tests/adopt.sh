#!/bin/sh
# SPDX-License-Identifier: MIT
#
# adopt.sh - the C integration suite tests/check_adopt: a daemon started
# after another one died (or stopped) takes over its live clients.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_adopt" "$@"
