# daemon/: mqbusd.  Everything but main.c is a convenience library that the
# unit tests link too.
noinst_LTLIBRARIES += daemon/libmqbusd.la
daemon_libmqbusd_la_SOURCES = \
	daemon/log.c daemon/log.h \
	daemon/router.c daemon/router.h \
	daemon/config_file.c daemon/config_file.h \
	daemon/hmap.c daemon/hmap.h \
	daemon/policy.c daemon/policy.h \
	daemon/msgbuf.c daemon/msgbuf.h \
	daemon/wake.c daemon/wake.h \
	daemon/account.c daemon/account.h \
	daemon/access.c daemon/access.h \
	daemon/subscriber.h \
	daemon/peer.c daemon/peer.h \
	daemon/deliver.c daemon/deliver.h \
	daemon/handshake.c daemon/handshake.h \
	daemon/route.c daemon/route.h \
	daemon/sub.c daemon/sub.h \
	daemon/request.c daemon/request.h \
	daemon/timer.c daemon/timer.h \
	daemon/retain.c daemon/retain.h \
	daemon/state.c daemon/state.h \
	daemon/stats.c daemon/stats.h \
	daemon/introspect.c daemon/introspect.h \
	daemon/restart.c daemon/restart.h \
	daemon/server.c daemon/server.h \
	daemon/sweep.c daemon/sweep.h
daemon_libmqbusd_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) \
	$(LIBSYSTEMD_CFLAGS) $(INIH_CFLAGS)
daemon_libmqbusd_la_LIBADD = proto/libproto.la $(LIBEVENT_LIBS) \
	$(LIBSYSTEMD_LIBS) $(INIH_LIBS) -lpthread

sbin_PROGRAMS += daemon/mqbusd
daemon_mqbusd_SOURCES = daemon/main.c
daemon_mqbusd_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBSYSTEMD_CFLAGS)
daemon_mqbusd_LDADD = daemon/libmqbusd.la
dist_man_MANS += daemon/mqbusd.8 daemon/mqbusd.conf.5
EXTRA_DIST += daemon/mqbusd.conf.example
# journalctl -x explains mqbusd's entries from this catalog
catalogdir = $(libdir)/systemd/catalog
dist_catalog_DATA = daemon/mqbus.catalog
