#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# gen-seeds.py - writes the seed corpora of the fuzz targets (committed in
# tests/fuzz/corpus/; run again after a change of the wire format):
#
#   python3 tests/fuzz/gen-seeds.py [OUTDIR]   (default: tests/fuzz/corpus)
#
# fuzz_proto: one message per file, each type as the library or the daemon
# sends it (proto/PROTOCOL.md), with and without keys and flags.
# fuzz_daemon: sessions of one client, as records "u16 length | message"
# (fuzz_daemon.c): subscribe and publish, retained values, requests and
# replies, timers, queries, queue groups, monitors, the topics of the
# target's overflow and policy rules, and a few broken messages.
# fuzz_config: mqbusd.conf files, from the example to each section's keys.
# Integers are little-endian, as on the x86 and arm hosts mqbus runs on.
import os
import struct
import sys

HDR = struct.Struct('<IBBHHHIIIIIIIIIQQ')
assert HDR.size == 64
MAGIC = 0x3142514d
(ANNOUNCE, HELLO, WELCOME, PUBLISH, DELIVER, SUBSCRIBE, UNSUBSCRIBE, ACK,
 ERROR, BYE, STATS, REQUEST, REPLY, TIMER_ADD, TIMER_CANCEL, TIMER_LIST,
 QUERY, BATCH) = range(1, 19)
FRAGMENT = 27  # proto/frag.h: a piece of a message larger than a queue's
F_PRIORITY, F_REQUEST, F_DETACHED, F_ABSOLUTE = 0x1, 0x2, 0x4, 0x8
F_RETAIN, F_RETAINED, F_MONITOR, F_REPLY, F_MORE, F_RESUME = (
    0x10, 0x20, 0x40, 0x80, 0x100, 0x200)
F_BATCH = 0x400
F_ORIGIN = 0x1000
F_SHM = 0x2000
F_AREA = 0x4000  # with F_SHM: the payload in a slot of a memory area


def origin(uid, pid, user, host, bridge):
    """An origin block (PROTOCOL.md, Remote origin)."""
    return (struct.pack('<IIBBBB', uid, pid, len(user), len(host),
                        len(bridge), 0) +
            user + b'\0' + host + b'\0' + bridge + b'\0')


def msg(mtype, topic=b'', payload=b'', key=b'', flags=0, priority=0,
        token=0, status=0, uid=0, pid=0, client_id=0, seq=0, ts=0,
        block=b'', shm=None):
    """shm: the payload's length in a memory file (PROTOCOL.md, Memory
    files) with its tag, (length, tag): the frame then ends after the
    key."""
    body = topic + b'\0' + (key + b'\0' if key else b'') + payload + block
    plen, tag = shm if shm else (len(payload), 0)
    return HDR.pack(MAGIC, 1, mtype, flags, len(topic), len(key),
                    plen, priority, token, status, uid, pid,
                    client_id, len(block), tag, seq, ts) + body


def batch(priority, *parts):
    payload = b''.join(struct.pack('<I', len(p)) + p for p in parts)
    return msg(BATCH, payload=payload, priority=priority,
               status=len(parts))


def records(*msgs, repair=False):
    out = b''
    for m in msgs:
        out += struct.pack('<H', len(m) | (0x8000 if repair else 0)) + m
    return out


def write(outdir, target, name, data):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


WELCOME_PAYLOAD = struct.pack('<IIIIqqqq', 1234, 15, 1024, 256, 10, 2048,
                              10, 2048)

PROTO = {
    'announce': msg(ANNOUNCE, b'/mqbus.1234.1.tx'),
    'announce-resume': msg(ANNOUNCE, b'/mqbus.1234.1.tx', flags=F_RESUME),
    'hello': msg(HELLO, b'/mqbus.1234.1.rx', pid=1234),
    'welcome': msg(WELCOME, payload=WELCOME_PAYLOAD, client_id=7),
    'publish': msg(PUBLISH, b'sensors/kitchen/temp', b'21.5'),
    'publish-prio': msg(PUBLISH, b'alerts/fire', b'!', flags=F_PRIORITY,
                        priority=30),
    'publish-key': msg(PUBLISH, b'a/state', b'on', key=b'lamp-1'),
    'publish-retain': msg(PUBLISH, b'config/x', b'v=1', flags=F_RETAIN),
    'publish-retain-clear': msg(PUBLISH, b'config/x', flags=F_RETAIN),
    'deliver': msg(DELIVER, b'a/b', b'hello', uid=1000, pid=4321,
                   client_id=3, seq=17, ts=1700000000000000000),
    'deliver-origin': msg(DELIVER, b'remote/a', b'21.5', flags=F_ORIGIN,
                          uid=65534, pid=77, client_id=0xffffff00,
                          block=origin(1000, 4711, b'alice', b'host-a',
                                       b'site')),
    'deliver-origin-bare': msg(DELIVER, b'remote/b', b'x', key=b'k',
                               flags=F_ORIGIN,
                               block=origin(0xffffffff, 0, b'', b'',
                                            b'b1')),
    'announce-origin': msg(ANNOUNCE, b'/bus.1.tx', flags=F_BATCH | F_ORIGIN),
    'announce-shm': msg(ANNOUNCE, b'/bus.1.tx', flags=F_BATCH | F_SHM),
    'welcome-shm': msg(WELCOME, b'mqbus-shm-77-0123456789abcdef',
                       WELCOME_PAYLOAD, flags=F_BATCH | F_SHM, client_id=7,
                       seq=1048576, ts=0x1122334455667788),
    'publish-shm': msg(PUBLISH, b'big/one', flags=F_SHM, token=5,
                       shm=(1048576, 1)),
    'deliver-shm': msg(DELIVER, b'big/one', key=b'k', flags=F_SHM,
                       uid=1000, pid=4321, client_id=3, seq=18,
                       shm=(65536, 0xffffffff)),
    'reply-shm': msg(REPLY, flags=F_SHM, token=9, shm=(200000, 2)),
    # shm_tag of a slot: the area's id times 256 plus the slot
    'publish-area': msg(PUBLISH, b'big/one', flags=F_SHM | F_AREA, token=6,
                        shm=(1048576, 5 << 8)),
    'deliver-area': msg(DELIVER, b'big/one', flags=F_SHM | F_AREA,
                        uid=1000, pid=4321, client_id=3, seq=19,
                        shm=(65536, (5 << 8) | 1)),
    'deliver-request': msg(DELIVER, b'svc/time', b'?', flags=F_REQUEST,
                           token=9, seq=2),
    'deliver-monitor-reply': msg(DELIVER, b'svc/time', b'12:00',
                                 flags=F_MONITOR | F_REPLY, token=9),
    'deliver-retained': msg(DELIVER, b'config/x', b'v=1', flags=F_RETAINED,
                            key=b'k'),
    'subscribe': msg(SUBSCRIBE, b'sensors/+/temp', token=1),
    'subscribe-hash': msg(SUBSCRIBE, b'#', token=2),
    'subscribe-group': msg(SUBSCRIBE, b'jobs/#', b'workers', token=3),
    'subscribe-monitor': msg(SUBSCRIBE, b'svc/#', flags=F_MONITOR, token=4),
    'unsubscribe': msg(UNSUBSCRIBE, b'sensors/+/temp', token=5),
    'ack': msg(ACK, token=5),
    'error': msg(ERROR, payload=b'permission denied', token=6, status=13),
    'bye': msg(BYE),
    'stats': msg(STATS, token=7),
    'stats-answer': msg(STATS, payload=b'clients=1\ndelivered=3\n', token=7),
    'request': msg(REQUEST, b'svc/time', b'now?', token=11, status=500),
    'reply': msg(REPLY, payload=b'12:00', token=42),
    'timer-add': msg(TIMER_ADD, b'tick', b't', token=12, seq=100, ts=1000),
    'timer-add-abs': msg(TIMER_ADD, b'at/noon', key=b'k',
                         flags=F_ABSOLUTE | F_DETACHED, token=13,
                         seq=1900000000000),
    'timer-cancel': msg(TIMER_CANCEL, token=14, seq=3),
    'timer-list': msg(TIMER_LIST, token=15),
    'query-clients': msg(QUERY, token=16, status=1),
    'query-topics-more': msg(QUERY, b'a/b', b'topic=a/b n=1\n',
                             flags=F_MORE, token=17, status=2, seq=5),
    'query-timers': msg(QUERY, token=18, status=5),
    'announce-batch': msg(ANNOUNCE, b'/mqbus.1234.1.tx',
                          flags=F_BATCH | F_RESUME),
    'welcome-batch': msg(WELCOME, payload=WELCOME_PAYLOAD, client_id=7,
                         flags=F_BATCH),
    'batch-publish': batch(0, msg(PUBLISH, b'a/b', b'1'),
                           msg(PUBLISH, b'a/c', b'2', key=b'k')),
    'batch-deliver': batch(5, msg(DELIVER, b'a/b', b'1', priority=5,
                                  uid=1000, pid=42, client_id=3, seq=9),
                           msg(DELIVER, b'a/b', b'2', priority=5, status=4,
                               uid=1000, pid=42, client_id=3, seq=14)),
    'batch-bad-part': batch(0, msg(ACK, token=1),
                            msg(PUBLISH, b'a//b', b'x')),
    'bad-magic': b'XXXX' + msg(PUBLISH, b'a', b'x')[4:],
    'bad-length': msg(PUBLISH, b'a/b', b'payload')[:-3],
    'bad-topic': msg(PUBLISH, b'a//b', b'x'),
    'short': msg(BYE)[:40],
    'fragment-first': msg(FRAGMENT, payload=msg(PUBLISH, b'big/x',
                                                b'L' * 3000)[:1983],
                          token=1, ts=3070),
    'fragment-last': msg(FRAGMENT, payload=b'L' * 1087, token=1, seq=1983,
                         ts=3070),
    'fragment-limit': msg(FRAGMENT, seq=100000),
}


def pieces(whole, mid, chunk=1983, prio=0):
    """The FRAGMENT frames of one whole encoded message."""
    return [msg(FRAGMENT, payload=whole[off:off + chunk], token=mid,
                seq=off, ts=len(whole), priority=prio)
            for off in range(0, len(whole), chunk)]

S = lambda topic, token=1, **kw: msg(SUBSCRIBE, topic, token=token, **kw)
P = lambda topic, payload=b'x', **kw: msg(PUBLISH, topic, payload, **kw)

DAEMON = {
    'sub-pub': records(S(b'a/#'), P(b'a/b', b'hello'), P(b'a/c', b'2')),
    'pub-nosub': records(P(b'x/y', b'nobody listens')),
    'retain': records(P(b'r/1', b'kept', flags=F_RETAIN),
                      S(b'r/+', token=2), msg(UNSUBSCRIBE, b'r/+', token=3),
                      P(b'r/1', flags=F_RETAIN)),
    'coalesce': records(S(b'a/#'), *[P(b'a/k', bytes([48 + i]), key=b'k%d' %
                                        (i % 2)) for i in range(12)]),
    'block': records(S(b'b/#'), *[P(b'b/x', b'y' * 100) for _ in range(14)]),
    'drop-old': records(S(b'c/+'), *[P(b'c/%d' % i, b'z',
                                       flags=F_PRIORITY, priority=i)
                                     for i in range(12)]),
    'disconnect': records(S(b'd/#'), *[P(b'd/x', b'w' * 300)
                                       for _ in range(14)]),
    'prio-rule': records(S(b'e/+/x'), P(b'e/1/x', flags=F_PRIORITY,
                                        priority=40)),
    'secret': records(P(b'secret/a'), S(b'secret/+/x'),
                      S(b'secret/mine/x', token=2),
                      P(b'secret/mine/x', flags=F_RETAIN)),
    'request-self': records(S(b'svc/time'),
                            msg(REQUEST, b'svc/time', b'?', token=5,
                                status=50),
                            msg(REPLY, payload=b'noon', token=1)),
    'request-none': records(msg(REQUEST, b'svc/none', b'?', token=6)),
    'batch-pub': records(S(b'a/#'), batch(0, P(b'a/b', b'1'),
                                          P(b'a/c', b'2', key=b'k'),
                                          P(b'a/d', b'3', flags=F_RETAIN))),
    'batch-bad': records(S(b'a/#'), batch(0, msg(ACK, token=1),
                                          P(b'a//b'), P(b'a/ok'))),
    'batch-burst': records(S(b'f/#'), *[P(b'f/x', b'v' * 40)
                                        for _ in range(30)]),
    'group': records(S(b'jobs/#', payload=b'workers'),
                     S(b'jobs/#', token=2, payload=b'others'),
                     P(b'jobs/1', b'do'),
                     msg(UNSUBSCRIBE, b'jobs/#', b'workers', token=3)),
    'monitor': records(S(b'#', flags=F_MONITOR), P(b'm/1'),
                       S(b'svc/#'), msg(REQUEST, b'svc/q', token=9)),
    'timers': records(msg(TIMER_ADD, b'tick', b't', token=1, seq=1),
                      msg(TIMER_ADD, b'tick/p', token=2, seq=5, ts=20),
                      msg(TIMER_LIST, token=3),
                      msg(TIMER_CANCEL, token=4, seq=1)),
    'timer-detached': records(msg(TIMER_ADD, b'late', key=b'k',
                                  flags=F_DETACHED, token=1, seq=30)),
    'queries': records(*[msg(QUERY, token=i, status=i) for i in range(1, 6)]),
    'query-more': records(P(b'q/a', flags=F_RETAIN), P(b'q/b',
                                                       flags=F_RETAIN),
                          msg(QUERY, b'q/a', token=1, status=4, seq=1)),
    'stats': records(S(b's/#'), P(b's/1'), msg(STATS, token=1)),
    'bye': records(S(b'a/#'), msg(BYE), P(b'a/after-bye')),
    'unsub-missing': records(msg(UNSUBSCRIBE, b'not/there', token=1)),
    'bad': records(b'', b'garbage', msg(PUBLISH, b'a/b', b'x')[:-1],
                   msg(WELCOME, payload=WELCOME_PAYLOAD, client_id=1),
                   msg(HELLO, b'/x.1.1.rx', pid=1),
                   msg(DELIVER, b'a', b'x')),
    'bad-many': records(*[b'bad'] * 70),
    'repaired': records(P(b'a/b', b'x'), S(b'a/+'), repair=True),
    'repaired-junk': records(b'\0' * 80, b'\xff' * 100, repair=True),
    'many-subs': records(*[S(b'l/%d/#' % i, token=i) for i in range(70)]),
    'big': records(S(b'big'), P(b'big', b'B' * 1900)),
    'large': records(S(b'big/#'), *pieces(P(b'big/x', b'L' * 6000,
                                             token=5), 1)),
    'large-retained': records(*pieces(P(b'big/r', b'R' * 4000,
                                        flags=F_RETAIN), 2),
                              S(b'big/#')),
    'large-request': records(S(b'svc/big'),
                             *pieces(msg(REQUEST, b'svc/big', b'Q' * 5000,
                                         token=8), 3)),
    'large-interleaved': records(S(b'big/#'),
                                 *[f for pair in zip(
                                     pieces(P(b'big/a', b'a' * 4000), 4),
                                     pieces(P(b'big/b', b'b' * 4000), 5))
                                   for f in pair]),
    'large-half': records(S(b'big/#'),
                          *pieces(P(b'big/h', b'h' * 9000), 6)[:2],
                          msg(BYE)),
    'large-limit': records(msg(FRAGMENT, seq=3000), S(b'big/#'),
                           *pieces(P(b'big/x', b'L' * 6000), 7)),
}

CONFIG = {
    'empty': b'',
    'bus': b'[bus]\nmax_priority = 15\npending_max = 256\nmax_clients = 1024\n'
           b'max_subscriptions = 1024\npending_bytes = 1048576\n'
           b'overflow = drop-new\npending_budget = 67108864\n'
           b'max_retained = 65536\nstats_interval = 60\nstats_topics = 20\n',
    'bus-uid': b'[bus]\nmax_clients_per_uid = 256\n'
               b'max_subscriptions_per_uid = 65536\n'
               b'max_requests_per_uid = 4096\n'
               b'pending_budget_per_uid = 16777216\nblock_timeout = 10\n'
               b'restart_grace_ms = 5000\nmax_timers_per_uid = 1024\n'
               b'timer_min_period_ms = 10\ntimer_rate_per_uid = 1000\n'
               b'max_retained_per_uid = 4096\n'
               b'max_retained_bytes_per_uid = 4194304\n',
    'topics': b'[topic "alerts/#"]\npriority = 10\nceiling = 20\n'
              b'backlog = 64\nbacklog_bytes = 65536\noverflow = drop-old\n'
              b'[topic "alerts/fire"]\npriority = 30\nceiling = 32767\n'
              b'[topic "sensors/+/temp"]\npriority = 5\n'
              b'[topic "logs/debug/#"]\npriority = 0\nceiling = 0\n',
    'overflows': b'[bus]\noverflow = block\n[topic "a/#"]\noverflow = '
                 b'coalesce\n[topic "b/+"]\noverflow = disconnect\n'
                 b'[topic "c"]\noverflow = drop-new\n',
    'policy': b'[policy]\ndefault = deny\nallow = all user=root topic=#\n'
              b'allow = publish,subscribe,request,serve,retain,timer,group '
              b'user=* topic=users/%u/#\nallow = subscribe * topic=system/#\n'
              b'allow = publish,subscribe,retain,group * topic=public/#\n'
              b'allow = request * topic=service/#\n',
    'policy-allow': b'[policy]\ndefault = allow\n'
                    b'deny = publish * topic=secret/#\n'
                    b'deny = subscribe group=0 topic=secret/+/x\n'
                    b'allow = subscribe user=0 topic=secret/mine/x\n'
                    b'deny = monitor user=root topic=%U/#\n',
    'policy-subst': b'[policy]\ndefault = deny\n'
                    b'allow = all * topic=home/%u/#\n'
                    b'allow = subscribe topic=ids/%U/+ group=root\n'
                    b'deny = serve user=root topic=home/root/x\n'
                    b'allow = publish * topic=lit/%%/x\n',
    'mixed': b'; comment\n# another\n\xef\xbb\xbf[bus]\n  max_priority = 7 ; '
             b'trailing\n\n[topic "a/+/c"]\n priority = 3\n[policy]\n'
             b'default = allow\n',
    'bad-section': b'[nope]\nx = 1\n',
    'bad-value': b'[bus]\nmax_priority = 99999\n',
    'bad-twice': b'[bus]\npending_max = 1\npending_max = 2\n',
    'bad-topic': b'[topic "a/#/b"]\npriority = 1\n',
    'bad-prio': b'[topic "x"]\npriority = 9\nceiling = 3\n',
    'bad-policy': b'[policy]\nallow = pub * topic=a\n',
    'bad-nodefault': b'[policy]\nallow = all * topic=#\n',
    'bad-syntax': b'[bus]\nmax_priority\n',
    'bad-outside': b'max_priority = 1\n',
    'dup-topic': b'[topic "a"]\n[topic "a"]\n',
    'bridge': b'[bridge site]\nhost = 127.0.0.1\nport = 1883\n'
              b'client_id = x\nkeepalive = 30\nclean_session = no\n'
              b'mqtt_version = 5\nqueue = 10\nreconnect_min_ms = 100\n'
              b'reconnect_max_ms = 1000\nout = sensors/# site1 qos=1\n'
              b'out = loop/#\nin = cmd/+/x remote priority=3 qos=1\n'
              b'[bridge old]\nhost = h\nmqtt_version = 3.1.1\n'
              b'out = a/# p\nin = q/#\n',
    'bad-bridge': b'[bridge x]\nhost = h\nmqtt_version = 3.1.1\n'
                  b'out = a/#\nin = +/b\n',
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and
                             sys.argv[1].startswith('-')):
        sys.exit('usage: gen-seeds.py [OUTDIR]  (default: %s)' %
                 os.path.join(here, 'corpus'))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here,
                                                                 'corpus')
    for name, data in PROTO.items():
        write(outdir, 'fuzz_proto', name, data)
    for name, data in DAEMON.items():
        write(outdir, 'fuzz_daemon', name, data)
    for name, data in CONFIG.items():
        write(outdir, 'fuzz_config', name + '.conf', data)
    example = os.path.join(here, '..', '..', 'daemon', 'mqbusd.conf.example')
    with open(example, 'rb') as f:
        write(outdir, 'fuzz_config', 'example.conf', f.read())


if __name__ == '__main__':
    main()
