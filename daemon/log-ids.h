/* SPDX-License-Identifier: MIT */
/*
 * log-ids.h - the MESSAGE_IDs of mqbusd's journal entries and the names
 * of the delivery counters they carry.
 *
 * An id names one kind of entry for good: monitoring rules, the catalog
 * (daemon/mqbus.catalog) and mqbusd(8), JOURNAL FIELDS, refer to it, so
 * an id is never changed or reused; a new kind of entry gets a new id
 * (systemd-id128 new).  This header holds only constants, so that
 * mqbusctl (client/history.c) reads back exactly what the daemon writes.
 */
#ifndef MQBUS_LOG_IDS_H
#define MQBUS_LOG_IDS_H

#define LOG_ID_STARTED "01669a6502fa4b74b41a0051c4f51f73"
#define LOG_ID_STOPPING "f233fabb4a6e42ae8d86f048288f045c"
#define LOG_ID_RELOADED "24b8ed51f92d49b99327782a367a5fa7"
#define LOG_ID_RELOAD_REFUSED "a2cb6b19279247aaad76c3340331abdb"
#define LOG_ID_CLIENT_CONNECTED "7ebfee848c024a309c56ee6c9cde254f"
#define LOG_ID_CLIENT_LEFT "2eb04e480a01413793a681e59d22bb66"
#define LOG_ID_HANDSHAKE_REFUSED "c54a8469fedc456a911bfdc01aa794b5"
#define LOG_ID_SLOW_CONSUMER "9c803ae837d9457987cb8213520a018a"
#define LOG_ID_TOO_LARGE "bd474e1a4e6745619d0292394a62cfcc"
#define LOG_ID_BAD_MESSAGES "4ce7e236ddac434ebc289d8af0c8490c"
#define LOG_ID_KERNEL_LIMIT "ca446fe34e3441a18732bf5db27c7489"
#define LOG_ID_STATS_BUS "5099115783a4474cafa17e89f6eb24b7"
#define LOG_ID_STATS_TOPIC "990a879b1b944b9688ff00aa31a8b2c2"
#define LOG_ID_POLICY_REFUSED "8881371cad3a41039b0ee8f7ab482d91"
#define LOG_ID_QUOTA_REFUSED "46127e903089437097702c2648c27b7b"
#define LOG_ID_BRIDGE_CONNECTED "18f290728d764b9fa694fb66af563bb8"
#define LOG_ID_BRIDGE_DISCONNECTED "7a08f3fcc5924201ab786c45926f82a0"
#define LOG_ID_BRIDGE_DROPPED "cf15973270c2411bb42a3d3edbd63fc9"

/*
 * The delivery counters of "client left" and the delivery-stats entries,
 * as X(FIELD, member, label): each is the journal field MQBUS_<FIELD>
 * (the bus entry adds MQBUS_<FIELD>_TOTAL), a uint64_t member of struct
 * log_counters, and a label for mqbusctl history.  MQBUS_DROPPED, the
 * sum of the MQBUS_DROPPED_* reasons, is written beside them.
 */
#define LOG_COUNTERS(X)                                                        \
	X(PUBLISHED, published, "published")                                   \
	X(DELIVERED, delivered, "delivered")                                   \
	X(DROPPED_BACKLOG, dropped_backlog, "dropped: backlog full")           \
	X(DROPPED_OLDEST, dropped_oldest, "dropped: oldest evicted")           \
	X(DROPPED_TOO_LARGE, dropped_too_large, "dropped: too large")          \
	X(DROPPED_DISCONNECT, dropped_disconnect, "dropped: disconnected")     \
	X(DROPPED_ERROR, dropped_error, "dropped: send error")                 \
	X(COALESCED, coalesced, "coalesced")                                   \
	X(REQUESTS, requests, "requests")                                      \
	X(REPLIES, replies, "replies")                                         \
	X(NO_RESPONDERS, no_responders, "no responders")

#endif
