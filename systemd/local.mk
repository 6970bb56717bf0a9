# systemd/: the unit.  configure does not expand ${prefix} inside @sbindir@,
# so the unit is made here, by make, from the final $(sbindir).
systemdsystemunit_DATA = systemd/mqbusd.service
dist_systemdsystemunit_DATA = systemd/mqbusd.socket
EXTRA_DIST += systemd/mqbusd.service.in
CLEANFILES += systemd/mqbusd.service

systemd/mqbusd.service: $(top_srcdir)/systemd/mqbusd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' \
	    -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g' \
	    $(top_srcdir)/systemd/mqbusd.service.in >$@.tmp && \
	mv $@.tmp $@
