# examples/: the programs of libmqbus(3), EXAMPLES, built by make check so
# that they cannot rot, and run against the daemon by tests/examples.sh,
# which also checks that the man page shows each program's very text.
EXAMPLE_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/client
check_PROGRAMS += examples/publish examples/blocking examples/event-loop \
	examples/handlers examples/async examples/retained \
	examples/responder examples/requester
examples_publish_SOURCES = examples/publish.c
examples_publish_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_publish_LDADD = client/libmqbus.la
examples_blocking_SOURCES = examples/blocking.c
examples_blocking_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_blocking_LDADD = client/libmqbus.la
examples_event_loop_SOURCES = examples/event-loop.c
examples_event_loop_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_event_loop_LDADD = client/libmqbus.la
examples_handlers_SOURCES = examples/handlers.c
examples_handlers_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_handlers_LDADD = client/libmqbus.la
examples_async_SOURCES = examples/async.c
examples_async_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_async_LDADD = client/libmqbus.la
examples_retained_SOURCES = examples/retained.c
examples_retained_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_retained_LDADD = client/libmqbus.la
examples_responder_SOURCES = examples/responder.c
examples_responder_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_responder_LDADD = client/libmqbus.la
examples_requester_SOURCES = examples/requester.c
examples_requester_CPPFLAGS = $(EXAMPLE_CPPFLAGS)
examples_requester_LDADD = client/libmqbus.la
TESTS += tests/examples.sh
EXTRA_DIST += tests/examples.sh examples/local.mk
