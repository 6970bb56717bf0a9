# tests/: unit suites (check, fork mode), integration suites against the
# real daemon, and the benchmark.  Every test runs under tests/harness.sh
# (a private IPC namespace with its own mqueue mount when possible).
TEST_CHECK_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(LIBEVENT_CFLAGS) \
	$(LIBSYSTEMD_CFLAGS) \
	-DMQBUS_VALGRIND_SUPP='"$(abs_top_srcdir)/tests/valgrind.supp"'
TEST_CHECK_LIBS = daemon/libmqbusd.la $(CHECK_LIBS)

check_PROGRAMS += tests/check_proto tests/check_router tests/check_config \
	tests/check_retain tests/check_delivery \
	tests/check_bus tests/check_server tests/check_policy \
	tests/check_adopt tests/check_crash tests/check_large tests/check_shm
tests_check_proto_SOURCES = tests/check_proto.c
tests_check_proto_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_proto_LDADD = proto/libproto.la $(CHECK_LIBS)
tests_check_router_SOURCES = tests/check_router.c
tests_check_router_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_router_LDADD = $(TEST_CHECK_LIBS)
tests_check_retain_SOURCES = tests/check_retain.c
tests_check_retain_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_retain_LDADD = $(TEST_CHECK_LIBS)
tests_check_config_SOURCES = tests/check_config.c
tests_check_config_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_config_LDADD = $(TEST_CHECK_LIBS)
tests_check_policy_SOURCES = tests/check_policy.c
tests_check_policy_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_policy_LDADD = $(TEST_CHECK_LIBS)
tests_check_delivery_SOURCES = tests/check_delivery.c tests/testbus.c \
	tests/testbus.h
tests_check_delivery_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_delivery_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)
tests_check_server_SOURCES = tests/check_server.c
tests_check_server_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_server_LDADD = $(TEST_CHECK_LIBS) client/libmqbus.la
tests_check_adopt_SOURCES = tests/check_adopt.c tests/testbus.c \
	tests/testbus.h
tests_check_adopt_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_adopt_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)
tests_check_crash_SOURCES = tests/check_crash.c tests/testbus.c \
	tests/testbus.h
tests_check_crash_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_crash_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)
tests_check_large_SOURCES = tests/check_large.c tests/testbus.c \
	tests/testbus.h
tests_check_large_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_large_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)
tests_check_shm_SOURCES = tests/check_shm.c tests/testbus.c tests/testbus.h
tests_check_shm_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_shm_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)
# large-bench: large messages through mqbus against a direct queue pair
# doing the same fragmenting and against dbus-broker (built by make, not
# installed; run it under tests/harness.sh: see the head of
# tests/bench/large-bench.c).  It starts dbus-broker with peer-dbus.c,
# which brings the rest of mqbus-bench's workers with it.
noinst_PROGRAMS += tests/bench/large-bench
tests_bench_large_bench_SOURCES = tests/bench/large-bench.c \
	tests/bench/bench-work.c tests/bench/bench-util.c tests/bench/bench.h \
	tests/bench/peer.c tests/bench/peer.h tests/bench/peer-dbus.c \
	tests/bench/peer-mqtt.c
tests_bench_large_bench_CFLAGS = $(AM_CFLAGS) $(LIBSYSTEMD_CFLAGS) \
	$(LIBMOSQUITTO_CFLAGS)
tests_bench_large_bench_LDADD = client/libmqbus.la proto/libproto.la \
	$(LIBSYSTEMD_LIBS) $(LIBMOSQUITTO_LIBS) -lpthread -lm
tests_bench_large_bench_LDFLAGS = $(AM_LDFLAGS) -no-install
tests_check_bus_SOURCES = tests/check_bus.c tests/testbus.c tests/testbus.h
tests_check_bus_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_bus_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)

# Helpers of the shell tests.  mqtool and notify-listen link no libtool
# library, so they are plain binaries.  mqbusctl-test is mqbusctl built
# with -no-install: a real binary, not a libtool wrapper script, that
# tests/multiuser.sh can copy (with client/.libs/libmqbus.so*) to a place
# another user can read and run it from.
check_PROGRAMS += tests/helpers/mqtool tests/helpers/notify-listen \
	tests/helpers/mqbusctl-test
tests_helpers_mqtool_SOURCES = tests/helpers/mqtool.c
tests_helpers_notify_listen_SOURCES = tests/helpers/notify-listen.c
tests_helpers_mqbusctl_test_SOURCES = client/mqbusctl.c
tests_helpers_mqbusctl_test_CFLAGS = $(AM_CFLAGS)
tests_helpers_mqbusctl_test_LDADD = client/libmqbus.la
tests_helpers_mqbusctl_test_LDFLAGS = $(AM_LDFLAGS) -no-install

TESTS += tests/check_proto tests/check_router tests/check_config \
	tests/check_retain tests/check_server tests/check_policy \
	tests/bus-notify.sh tests/bus-thread.sh tests/bus-poll.sh \
	tests/delivery.sh tests/adopt.sh tests/completion.sh tests/crash.sh \
	tests/cli.sh tests/multiuser.sh tests/systemd.sh tests/policy.sh \
	tests/quota.sh tests/large.sh tests/large-shm.sh tests/large-area.sh \
	tests/large-cli.sh \
	tests/shm.sh
EXTRA_DIST += tests/harness.sh tests/large.sh tests/large-shm.sh tests/large-area.sh tests/shm.sh tests/large-cli.sh tests/lib.sh tests/tap.sh tests/bus-notify.sh \
	tests/adopt.sh tests/soak.sh tests/completion.sh tests/crash.sh \
	tests/valgrind.supp \
	tests/policy.sh tests/quota.sh \
	tests/delivery.sh \
	tests/bus-thread.sh tests/bus-poll.sh tests/cli.sh tests/multiuser.sh \
	tests/systemd.sh tests/run-tests.sh scripts/deps.sh scripts/demo.sh
LOG_COMPILER = $(SHELL) $(top_srcdir)/tests/harness.sh
AM_TESTS_ENVIRONMENT = \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	CK_FORK=yes; export CK_FORK;
TESTS += tests/alloc.sh
EXTRA_DIST += tests/alloc.sh
# tests/journal.sh: a real journald, the log events and mqbusctl history
check_PROGRAMS += tests/helpers/log-emit
tests_helpers_log_emit_SOURCES = tests/helpers/log-emit.c daemon/log.c
tests_helpers_log_emit_CFLAGS = $(AM_CFLAGS) $(LIBSYSTEMD_CFLAGS)
tests_helpers_log_emit_LDADD = $(LIBSYSTEMD_LIBS)
TESTS += tests/journal.sh
EXTRA_DIST += tests/journal.sh
# tests/bridge.sh: the MQTT bridge against a real mosquitto on loopback;
# tests/bridge-hosts.sh: two hosts (network, IPC, mount namespaces) through
# one mosquitto; tests/bridge-tls.sh: TLS with client certificates made by
# openssl (all skipped without mosquitto, failed under CI=true)
TESTS += tests/bridge.sh tests/bridge-hosts.sh tests/bridge-tls.sh
EXTRA_DIST += tests/bridge.sh tests/bridge-hosts.sh tests/bridge-tls.sh
tests_helpers_mqbusctl_test_SOURCES += client/history.c
tests_helpers_mqbusctl_test_CFLAGS += $(LIBSYSTEMD_CFLAGS)
tests_helpers_mqbusctl_test_LDADD += $(LIBSYSTEMD_LIBS)
# tests/monitor.sh: mqbusctl monitor and the marks of sub --json
TESTS += tests/monitor.sh
EXTRA_DIST += tests/monitor.sh
# tests/introspect.sh: mqbusctl stats, list, topics and top, QUERY
tests_helpers_mqbusctl_test_SOURCES += client/inspect.c
TESTS += tests/introspect.sh
EXTRA_DIST += tests/introspect.sh
# tests/restart.sh: mqbusctl sub and serve across daemon restarts
TESTS += tests/restart.sh
EXTRA_DIST += tests/restart.sh
# tests/state.sh: retained values and timers across restarts (-s DIR);
# tests/check_state.c: the state file's parser, bounds and timer_claim()
TESTS += tests/state.sh
EXTRA_DIST += tests/state.sh
check_PROGRAMS += tests/check_state
tests_check_state_SOURCES = tests/check_state.c
tests_check_state_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_state_LDADD = $(TEST_CHECK_LIBS) client/libmqbus.la
TESTS += tests/check_state
# tests/python.sh: the Python package python/mqbus against the daemon
TESTS += tests/python.sh
# tests/symbols.sh: the exported symbols, their version nodes, the
# symbols file, -version-info and the MQBUS_VERSION_* macros
TESTS += tests/symbols.sh
EXTRA_DIST += tests/symbols.sh
# tests/manlinks.sh: man mqbus_publish (the .so pages make install puts
# in man3)
TESTS += tests/manlinks.sh
EXTRA_DIST += tests/manlinks.sh
EXTRA_DIST += tests/python.sh python/pyproject.toml python/README.md \
	python/mqbus/__init__.py python/mqbus/_ffi.py \
	python/tests/conftest.py python/tests/test_bus.py
# tests/client.sh: libmqbus's contract (tests/check_client.c):
# per-subscription handlers, mqbus_topic_match() and the rules of every call
check_PROGRAMS += tests/check_client
tests_check_client_SOURCES = tests/check_client.c tests/testbus.c \
	tests/testbus.h
tests_check_client_CFLAGS = $(TEST_CHECK_CFLAGS)
tests_check_client_LDADD = client/libmqbus.la proto/libproto.la $(CHECK_LIBS)
TESTS += tests/client.sh
EXTRA_DIST += tests/client.sh
# mqbus-bench's peer rows (dbus-broker, mosquitto): they run, and check
# every message
TESTS += tests/bench-peers.sh
EXTRA_DIST += tests/bench-peers.sh
# large-bench's rows (direct pair, mqbusd, dbus-broker): they run briefly,
# and check every message
TESTS += tests/large-bench.sh
EXTRA_DIST += tests/large-bench.sh
