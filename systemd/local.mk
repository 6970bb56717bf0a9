# systemd/: the units.  configure does not expand ${prefix} inside
# @sbindir@, so the services are made here, by make, from the final
# $(sbindir).
#   mqbusd.service, mqbusd.socket      the system bus (mqbus)
#   mqbusd@.service, mqbusd@.socket    named buses: mqbusd@NAME is bus NAME
#   user/mqbusd.service, .socket       the per-user bus user-UID
systemdsystemunit_DATA = systemd/mqbusd.service systemd/mqbusd@.service
dist_systemdsystemunit_DATA = systemd/mqbusd.socket systemd/mqbusd@.socket
systemduserunit_DATA = systemd/user/mqbusd.service
dist_systemduserunit_DATA = systemd/user/mqbusd.socket
EXTRA_DIST += systemd/mqbusd.service.in systemd/mqbusd@.service.in \
	systemd/user/mqbusd.service.in
CLEANFILES += systemd/mqbusd.service systemd/mqbusd@.service \
	systemd/user/mqbusd.service

MQBUS_UNIT_SUBST = sed -e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g'

systemd/mqbusd.service: $(top_srcdir)/systemd/mqbusd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	$(MQBUS_UNIT_SUBST) $(top_srcdir)/systemd/mqbusd.service.in >$@.tmp && \
	mv $@.tmp $@
systemd/mqbusd@.service: $(top_srcdir)/systemd/mqbusd@.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	$(MQBUS_UNIT_SUBST) $(top_srcdir)/systemd/mqbusd@.service.in >$@.tmp && \
	mv $@.tmp $@
systemd/user/mqbusd.service: $(top_srcdir)/systemd/user/mqbusd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd/user && \
	$(MQBUS_UNIT_SUBST) $(top_srcdir)/systemd/user/mqbusd.service.in >$@.tmp && \
	mv $@.tmp $@
