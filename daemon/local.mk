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
	daemon/large.c daemon/large.h \
	daemon/shm.c daemon/shm.h \
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
	daemon/sweep.c daemon/sweep.h \
	daemon/bridge_conf.c daemon/bridge_conf.h \
	daemon/bridge.c daemon/bridge.h
daemon_libmqbusd_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) \
	$(LIBSYSTEMD_CFLAGS) $(INIH_CFLAGS) $(MOSQUITTO_CFLAGS)
daemon_libmqbusd_la_LIBADD = proto/libproto.la $(LIBEVENT_LIBS) \
	$(LIBSYSTEMD_LIBS) $(INIH_LIBS) $(MOSQUITTO_LIBS) -lpthread

sbin_PROGRAMS += daemon/mqbusd
daemon_mqbusd_SOURCES = daemon/main.c
daemon_mqbusd_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBSYSTEMD_CFLAGS)
daemon_mqbusd_LDADD = daemon/libmqbusd.la
dist_man_MANS += daemon/mqbusd.8 daemon/mqbusd.conf.5
EXTRA_DIST += daemon/mqbusd.conf.example

# The commented example is installed as the configuration the system unit
# reads, $(sysconfdir)/mqbus/mqbusd.conf.  A file already there that
# differs from it (one an administrator edited) is kept, and the example
# goes beside it as mqbusd.conf.example; uninstalling removes the file
# only if it is still the example.
mqbusconfdir = $(sysconfdir)/mqbus
install-data-local: install-mqbusd-conf
uninstall-local: uninstall-mqbusd-conf
install-mqbusd-conf:
	$(MKDIR_P) '$(DESTDIR)$(mqbusconfdir)'
	@src='$(srcdir)/daemon/mqbusd.conf.example'; \
	dst='$(DESTDIR)$(mqbusconfdir)/mqbusd.conf'; \
	if test -f "$$dst" && ! cmp -s "$$src" "$$dst"; then \
	  echo " $$dst differs from the example: kept;" \
	    "the example is installed as $$dst.example"; \
	  echo " $(INSTALL_DATA) $$src $$dst.example"; \
	  $(INSTALL_DATA) "$$src" "$$dst.example"; \
	else \
	  echo " $(INSTALL_DATA) $$src $$dst"; \
	  $(INSTALL_DATA) "$$src" "$$dst"; \
	fi
uninstall-mqbusd-conf:
	@src='$(srcdir)/daemon/mqbusd.conf.example'; \
	dst='$(DESTDIR)$(mqbusconfdir)/mqbusd.conf'; \
	if cmp -s "$$src" "$$dst"; then \
	  echo " rm -f $$dst"; rm -f "$$dst"; \
	fi; \
	rm -f "$$dst.example"
.PHONY: install-mqbusd-conf uninstall-mqbusd-conf
# journalctl -x explains mqbusd's entries from this catalog
catalogdir = $(libdir)/systemd/catalog
dist_catalog_DATA = daemon/mqbus.catalog
