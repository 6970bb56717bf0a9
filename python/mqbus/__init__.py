# SPDX-License-Identifier: MIT
"""mqbus - Python client of the mqbus message bus, over libmqbus.

    import mqbus
    with mqbus.Bus() as bus:
        sub = bus.subscribe("sensors/#")
        bus.publish("sensors/t1", b"21.5", key="t1")
        msg = sub.get(timeout=1)

A Bus is one client of one bus (one libmqbus handle, two POSIX queues).
Messages the library receives are sorted into the Subscription objects
whose pattern matches their topic: iterate a subscription (or call its
get()) to wait for the next one, or give subscribe() a callback, which
runs from inside bus.process() / bus.run() or, with asyncio, from the
loop's reader on bus.fileno().  Requests that match a bus.serve() pattern
are answered with what its handler returns.

Timeouts are in seconds (float; None: wait as the call's default says);
timer delays and periods are in milliseconds, as their names say.  Errors
of the library are raised as mqbus.Error, an OSError whose errno is the
library's and whose strerror is mqbus_last_error()'s sentence.  A Bus is
not thread-safe: use one per thread.
"""

import asyncio
import collections
import ctypes
import errno
import itertools
import os
import select
import time

from . import _ffi

__all__ = ["Bus", "Error", "Message", "Subscription", "AsyncSubscription",
           "topic_match", "PRIORITY_MAX", "KEY_MAX"]

__version__ = "0.1.0"

PRIORITY_MAX = 32767
KEY_MAX = _ffi.KEY_MAX


class Error(OSError):
    """A failed libmqbus call: errno is the library's (EINVAL, ENOENT,
    ETIMEDOUT, EHOSTUNREACH ...), strerror the library's sentence."""


def _text(value, what):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise TypeError(f"{what} must be str, not {type(value).__name__}")


def _data(value):
    if isinstance(value, str):
        return value.encode()
    try:
        return bytes(memoryview(value))
    except TypeError:
        raise TypeError("payload must be bytes-like or str, not "
                        f"{type(value).__name__}") from None


def _priority(priority):
    if priority is None:
        return _ffi.PRIORITY_DEFAULT
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError("priority must be an int or None")
    # the library refuses it with EINVAL and a sentence; no check here
    return priority


def _ms(timeout, none):
    """Seconds (None: none) as the library's milliseconds."""
    if timeout is None:
        return none
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    return min(int(timeout * 1000 + 0.999), 2**31 - 1)


def topic_match(pattern, topic):
    """True if topic matches pattern ('+' one level, '#' as the last level
    this level and everything below, as in MQTT and as the daemon
    matches)."""
    lib = _ffi.lib()
    if hasattr(lib, "mqbus_topic_match"):
        return lib.mqbus_topic_match(_text(pattern, "pattern"),
                                     _text(topic, "topic")) > 0
    p = pattern.split("/")
    t = topic.split("/")
    if topic == "":
        return False
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(p) == len(t)


class Origin(collections.namedtuple("Origin",
                                    "uid pid user host bridge")):
    """What the remote host claims of the sender of a message that came
    through an MQTT bridge of the daemon (mqbus_msg_origin(3)): uid, pid
    (None: not said), user, host (None: not said), and the name of the
    local bridge.  Claims, as trustworthy as the remote mqbusd and its
    broker; the verified sender (sender_uid ...) stays the bridge."""

    __slots__ = ()

    @staticmethod
    def _of(lib, cmsg):
        if not hasattr(lib, "mqbus_msg_origin"):
            return None
        p = lib.mqbus_msg_origin(cmsg)
        if not p:
            return None
        o = p.contents
        return Origin(None if o.uid == 0xffffffff else o.uid,
                      o.pid or None,
                      o.user.decode() if o.user else None,
                      o.host.decode() if o.host else None,
                      o.bridge.decode())


class Message:
    """A received message, copied out of the library's.

    topic (str), payload (bytes), priority, key (str or None), sender_uid,
    sender_pid, client_id, seq, timestamp_ns, dropped, retained (bool),
    is_request (bool), request_id, drop_notice (bool), origin (an Origin,
    or None: see Bus(origin=True)).  A request
    (is_request) is answered with msg.reply(payload), once.  A drop notice
    is no message: `dropped` messages were lost on the way here and none
    followed to say so; its topic is the last one's, its payload empty.
    """

    __slots__ = ("topic", "payload", "priority", "key", "sender_uid",
                 "sender_pid", "client_id", "seq", "timestamp_ns",
                 "dropped", "retained", "is_request", "request_id",
                 "drop_notice", "origin", "_bus", "_req")

    def __init__(self, bus, cmsg, keep):
        lib = _ffi.lib()
        n = ctypes.c_size_t()
        data = lib.mqbus_msg_payload(cmsg, ctypes.byref(n))
        self.payload = ctypes.string_at(data, n.value) if data else b""
        self.topic = lib.mqbus_msg_topic(cmsg).decode(errors="replace")
        key = lib.mqbus_msg_key(cmsg)
        self.key = key.decode(errors="replace") if key is not None else None
        self.priority = lib.mqbus_msg_priority(cmsg)
        self.sender_uid = lib.mqbus_msg_sender_uid(cmsg)
        self.sender_pid = lib.mqbus_msg_sender_pid(cmsg)
        self.client_id = lib.mqbus_msg_client_id(cmsg)
        self.seq = lib.mqbus_msg_seq(cmsg)
        self.timestamp_ns = lib.mqbus_msg_timestamp(cmsg)
        self.dropped = lib.mqbus_msg_dropped(cmsg)
        self.retained = lib.mqbus_msg_retained(cmsg) == 1
        self.is_request = lib.mqbus_msg_is_request(cmsg) == 1
        self.request_id = lib.mqbus_msg_request_id(cmsg)
        self.drop_notice = lib.mqbus_msg_is_drop_notice(cmsg) == 1
        self.origin = Origin._of(lib, cmsg)
        self._bus = bus
        # a request keeps the library's message until it is answered
        self._req = cmsg if keep and self.is_request else None

    def reply(self, payload=b""):
        """Answers this request (once) with payload."""
        if self._req is None:
            raise Error(errno.EINVAL, "already answered" if self.is_request
                        else "not a request: nothing to answer")
        bus = self._bus
        data = _data(payload)
        try:
            bus._check(_ffi.lib().mqbus_reply(bus._handle(), self._req,
                                              data, len(data)))
        finally:
            self._release()

    def _release(self):
        if self._req is not None:
            _ffi.lib().mqbus_msg_free(self._req)
            self._req = None

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass

    def __repr__(self):
        return (f"<mqbus.Message topic={self.topic!r} "
                f"payload={self.payload[:32]!r} priority={self.priority} "
                f"key={self.key!r} seq={self.seq}>")


class Subscription:
    """The messages of one pattern: iterate it, or call get().  With a
    callback (or as a bus.serve() responder) its messages go to that
    instead, from inside bus.process()."""

    def __init__(self, bus, pattern, group, callback, serve):
        self.bus = bus
        self.pattern = pattern
        self.group = group
        self._callback = callback
        self._serve = serve
        self._queue = collections.deque()
        self._closed = False

    def _deliver(self, msg):
        self._queue.append(msg)

    def _run_callbacks(self):
        n = 0
        while self._queue and not self._closed:
            msg = self._queue.popleft()
            if self._serve is not None:
                if not msg.is_request:
                    msg._release()
                    continue
                answer = self._serve(msg)
                if msg._req is not None:
                    msg.reply(b"" if answer is None else answer)
            else:
                self._callback(msg)
            n += 1
        return n

    def get(self, timeout=None):
        """The next message (waiting up to timeout seconds; None: for
        ever), or None when the time ran out or the subscription ended."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._queue:
            if self._closed or self.bus._goodbye:
                return None
            if end is None:
                self.bus._pump(None)
                continue
            left = end - time.monotonic()
            self.bus._pump(max(0.0, left))
            if left <= 0 and not self._queue:
                return None
        return self._queue.popleft()

    def __iter__(self):
        return self

    def __next__(self):
        msg = self.get()
        if msg is None:
            raise StopIteration
        return msg

    def close(self):
        """Unsubscribes (the messages already queued are dropped)."""
        if not self._closed:
            self.bus._unsubscribe(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<mqbus.Subscription {self.pattern!r}>"


class AsyncSubscription(Subscription):
    """A subscription for asyncio: async for msg in sub, or await
    sub.aget().  The bus's fd is watched with loop.add_reader()."""

    def __init__(self, *args):
        super().__init__(*args)
        self._event = asyncio.Event()

    def _deliver(self, msg):
        self._queue.append(msg)
        self._event.set()

    def _wake(self):
        self._event.set()

    async def aget(self, timeout=None):
        """The next message, or None after timeout seconds or once the
        subscription ended."""
        async def wait():
            while not self._queue:
                if self._closed or self.bus._goodbye:
                    return None
                self._event.clear()
                await self._event.wait()
            return self._queue.popleft()
        if timeout is None:
            return await wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            return None

    def __aiter__(self):
        return self

    async def __anext__(self):
        msg = await self.aget()
        if msg is None:
            raise StopAsyncIteration
        return msg


class Bus:
    """A client of the bus name (None: $MQBUS_BUS, else "mqbus").

    timeout: seconds that blocking calls wait (connect, subscribe,
    publish into a full queue, the default of requests); None: the
    library's 5 s.  queue_size: (maxmsg, msgsize) of this client's queues;
    None: the library's default.  origin: ask for the remote origin of
    messages that came through an MQTT bridge (Message.origin).  Use it as
    a context manager, or call close().
    """

    def __init__(self, name=None, timeout=None, queue_size=None,
                 origin=False):
        lib = _ffi.lib()
        self._b = None
        self._subs = {}
        self._goodbye = False
        self._stopped = False
        self._loop = None
        self._timer_handle = None
        self._replies = {}
        self._ready = []
        self._ran = 0
        self._tokens = itertools.count(1)
        self._reply_cb = _ffi.reply_handler(self._on_reply)
        h = _ffi.bus_p()
        r = lib.mqbus_new(ctypes.byref(h))
        if r < 0:
            raise Error(-r, os.strerror(-r))
        self._b = h
        try:
            if name is not None:
                self._check(lib.mqbus_set_bus(h, _text(name, "bus name")))
            if timeout is not None:
                self._check(lib.mqbus_set_timeout(h, _ms(timeout, -1)))
            if queue_size is not None:
                maxmsg, msgsize = queue_size
                self._check(lib.mqbus_set_queue_size(h, maxmsg, msgsize))
            if origin:
                if not hasattr(lib, "mqbus_set_origin"):
                    raise Error(errno.ENOSYS, "this libmqbus has no remote "
                                "origins (LIBMQBUS_1.7)")
                self._check(lib.mqbus_set_origin(h, 1))
            self._check(lib.mqbus_connect(h))
        except BaseException:
            lib.mqbus_free(h)
            self._b = None
            raise
        self.name = name if name is not None else \
            os.environ.get("MQBUS_BUS") or "mqbus"

    # ---------------------------------------------------------- handle

    def _handle(self):
        if self._b is None:
            raise Error(errno.ENOTCONN, "the bus is closed")
        return self._b

    def _check(self, r):
        """r, or Error(-r) with the library's sentence when r < 0."""
        if r >= 0:
            return r
        sentence = b""
        if self._b is not None:
            sentence = _ffi.lib().mqbus_last_error(self._b) or b""
        raise Error(-r, sentence.decode(errors="replace")
                    or os.strerror(-r))

    def close(self):
        """Says goodbye and frees the handle; idempotent."""
        if self._b is None:
            return
        if self._loop is not None:
            self._detach_loop()
        for sub in self._subs.values():
            sub._closed = True
            for msg in sub._queue:
                msg._release()
            sub._queue.clear()
            if isinstance(sub, AsyncSubscription):
                sub._wake()
        self._subs.clear()
        self._replies.clear()
        _ffi.lib().mqbus_free(self._b)
        self._b = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self):
        return self._b is None

    @property
    def client_id(self):
        """This client's id on the bus."""
        return _ffi.lib().mqbus_client_id(self._handle())

    def fileno(self):
        """The rx queue's descriptor, to watch for readability (then call
        process()).  It belongs to the bus: do not read or close it."""
        return self._check(_ffi.lib().mqbus_get_fd(self._handle()))

    def max_payload(self, topic):
        """The largest payload that fits this client's queues on topic."""
        return _ffi.lib().mqbus_max_payload(self._handle(),
                                            _text(topic, "topic"))

    # ---------------------------------------------------------- publishing

    def publish(self, topic, payload=b"", priority=None, key=None,
                retain=False):
        """Publishes payload (bytes, or str as UTF-8) on topic.  priority:
        0..32767, None for the topic's default; key: the object the
        message is about (None: none); retain: keep it as the topic's
        value.  Returns once it is in the tx queue (see sync())."""
        o = _ffi.publish_opts_init()
        o.priority = _priority(priority)
        o.flags = _ffi.PUBLISH_RETAIN if retain else 0
        if key is not None:
            o.key = _text(key, "key")
        data = _data(payload)
        self._check(_ffi.lib().mqbus_publish_opts(
            self._handle(), _text(topic, "topic"), data, len(data),
            ctypes.byref(o)))

    def sync(self):
        """Waits until the daemon has handled everything sent before; raises
        the first refusal of a publish since the last sync()."""
        self._check(_ffi.lib().mqbus_sync(self._handle()))

    # ---------------------------------------------------------- subscribing

    def subscribe(self, pattern, callback=None, group=None):
        """Subscribes to pattern and returns its Subscription: iterate it,
        or give callback(msg), run from inside process().  group: join that
        queue group instead (each message goes to one member)."""
        return self._subscribe(Subscription, pattern, group, callback, None)

    def serve(self, pattern, handler, group=None):
        """Answers the requests on pattern with handler(msg), which returns
        the reply (bytes or str; None: an empty reply).  Handlers run from
        inside process() / run() / the asyncio reader.  An exception of
        the handler propagates out of process() and leaves the request
        unanswered (the requester times out)."""
        if not callable(handler):
            raise TypeError("handler must be callable")
        return self._subscribe(Subscription, pattern, group, None, handler)

    def subscribe_async(self, pattern, group=None):
        """An AsyncSubscription of pattern, for async for; must be called
        from a running asyncio loop, whose reader watches fileno()."""
        sub = self._subscribe(AsyncSubscription, pattern, group, None, None)
        self._attach_loop()
        return sub

    def _subscribe(self, cls, pattern, group, callback, serve):
        lib = _ffi.lib()
        p = _text(pattern, "pattern")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        if group is None:
            self._check(lib.mqbus_subscribe(self._handle(), p))
        else:
            self._check(lib.mqbus_subscribe_group(self._handle(), p,
                                                  _text(group, "group")))
        sub = cls(self, pattern, group, callback, serve)
        self._subs[(pattern, group)] = sub
        self._kick()
        return sub

    def unsubscribe(self, pattern, group=None):
        """Ends the subscription of pattern (in group)."""
        sub = self._subs.get((pattern, group))
        if sub is None:
            raise Error(errno.ENOENT, f"not subscribed to {pattern}"
                        + (f" in group {group}" if group else ""))
        self._unsubscribe(sub)

    def _unsubscribe(self, sub):
        lib = _ffi.lib()
        p = _text(sub.pattern, "pattern")
        self._subs.pop((sub.pattern, sub.group), None)
        sub._closed = True
        if isinstance(sub, AsyncSubscription):
            sub._wake()
        if self._b is None:
            return
        if sub.group is None:
            self._check(lib.mqbus_unsubscribe(self._b, p))
        else:
            self._check(lib.mqbus_unsubscribe_group(
                self._b, p, _text(sub.group, "group")))

    # ---------------------------------------------------------- requests

    def _request_opts(self, timeout, priority):
        o = _ffi.request_opts_init()
        o.priority = _priority(priority)
        o.timeout_ms = _ms(timeout, -1)
        return o

    def request(self, topic, payload=b"", timeout=None, priority=None):
        """Sends payload as a request on topic and returns the reply
        Message (its sender fields are the responder's).  timeout in
        seconds (None: the bus's).  Error EHOSTUNREACH: no responders;
        ETIMEDOUT: no reply in time."""
        o = self._request_opts(timeout, priority)
        data = _data(payload)
        reply = _ffi.msg_p()
        lib = _ffi.lib()
        self._check(lib.mqbus_request_opts(
            self._handle(), _text(topic, "topic"), data, len(data),
            ctypes.byref(o), ctypes.byref(reply)))
        try:
            msg = Message(self, reply, False)
        finally:
            lib.mqbus_msg_free(reply)
        self._kick()
        return msg

    def request_async(self, topic, payload, callback, timeout=None,
                      priority=None):
        """Sends a request and returns at once; callback(reply, error)
        runs later from inside process() with the reply Message and None,
        or None and an Error."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        o = self._request_opts(timeout, priority)
        data = _data(payload)
        token = next(self._tokens)
        self._replies[token] = callback
        r = _ffi.lib().mqbus_request_async_opts(
            self._handle(), _text(topic, "topic"), data, len(data),
            ctypes.byref(o), self._reply_cb, token)
        if r < 0:
            del self._replies[token]
            self._check(r)
        self._kick()

    async def arequest(self, topic, payload=b"", timeout=None,
                       priority=None):
        """request() for asyncio: the reply, awaited without blocking."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(reply, error):
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(reply)
        self.request_async(topic, payload, done, timeout, priority)
        self._attach_loop()
        return await fut

    def _on_reply(self, b, error, reply, token):
        # runs inside mqbus_process(): only copy, the callback runs later
        cb = self._replies.pop(token, None)
        if cb is None:
            return
        if error == 0 and reply:
            self._ready.append((cb, Message(self, reply, False), None))
        else:
            e = -error if error < 0 else errno.EIO
            self._ready.append((cb, None, Error(e, os.strerror(e))))

    # ---------------------------------------------------------- timers

    def timer(self, topic, payload=b"", delay_ms=0, period_ms=0,
              detached=False, priority=None, key=None, absolute=False):
        """Has the daemon publish payload on topic after delay_ms (with
        absolute: at that CLOCK_REALTIME time in ms since the epoch), then
        every period_ms if not 0.  detached: the timer outlives this
        client.  Returns the timer's id."""
        o = _ffi.timer_add_opts_init()
        o.priority = _priority(priority)
        o.flags = (_ffi.TIMER_DETACHED if detached else 0) | \
            (_ffi.TIMER_ABSOLUTE if absolute else 0)
        if key is not None:
            o.key = _text(key, "key")
        if delay_ms < 0 or period_ms < 0:
            raise ValueError("delay_ms and period_ms must be >= 0")
        o.when = delay_ms
        o.period_ms = period_ms
        data = _data(payload)
        tid = ctypes.c_uint64()
        self._check(_ffi.lib().mqbus_timer_add_opts(
            self._handle(), _text(topic, "topic"), data, len(data),
            ctypes.byref(o), ctypes.byref(tid)))
        self._kick()
        return tid.value

    def cancel_timer(self, timer_id):
        """Cancels a timer (Error ENOENT: none such, or it has fired)."""
        self._check(_ffi.lib().mqbus_timer_cancel(self._handle(), timer_id))

    def _text_call(self, fn, *args):
        out = ctypes.c_void_p()
        self._check(fn(self._handle(), *args, ctypes.byref(out)))
        try:
            return ctypes.string_at(out.value).decode(errors="replace")
        finally:
            _ffi.free(out)

    @staticmethod
    def _fields(text):
        return [dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
                for line in text.splitlines() if line]

    def timers(self):
        """The timers this client may see, a dict of fields each."""
        return self._fields(self._text_call(_ffi.lib().mqbus_timer_list))

    def stats(self):
        """The daemon's counters, as a dict of strings."""
        text = self._text_call(_ffi.lib().mqbus_stats)
        return dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line)

    def query(self, what):
        """The daemon's list of what ("clients", "topics",
        "subscriptions", "retained", "timers"), a dict of fields each."""
        return self._fields(self._text_call(_ffi.lib().mqbus_query,
                                            _text(what, "what")))

    # ---------------------------------------------------------- dispatch

    def _sort(self, cmsg):
        """Files a received message with the subscriptions it matches."""
        lib = _ffi.lib()
        try:
            msg = Message(self, cmsg, True)
        except BaseException:
            lib.mqbus_msg_free(cmsg)
            raise
        if msg._req is None:
            lib.mqbus_msg_free(cmsg)
        subs = [s for s in self._subs.values()
                if topic_match(s.pattern, msg.topic)]
        if msg.is_request:
            # one answer only: a responder first, else one subscription
            subs = [s for s in subs if s._serve is not None] or subs[:1]
            subs = subs[:1]
        for s in subs:
            s._deliver(msg)
        if not subs:
            msg._release()

    def _pump(self, timeout):
        """Reads what the library has (waiting up to timeout seconds for
        the first, None: for ever) and sorts it.  True if anything came."""
        lib = _ffi.lib()
        b = self._handle()
        self._process_replies()
        ms = _ms(timeout, -1)
        t = lib.mqbus_get_timeout(b)
        if t >= 0 and (ms < 0 or t < ms):
            ms = t
        got = False
        while True:
            m = _ffi.msg_p()
            r = lib.mqbus_receive(b, ctypes.byref(m), 0 if got else ms)
            if r == -errno.ETIMEDOUT:
                break
            if r == -errno.ENOTCONN:
                self._goodbye = True
                for s in self._subs.values():
                    if isinstance(s, AsyncSubscription):
                        s._wake()
                break
            self._check(r)
            self._sort(m)
            got = True
        return self._process_replies() > 0 or got

    def _process_replies(self):
        r = _ffi.lib().mqbus_process(self._handle())
        if r == -errno.ENOTCONN:
            self._goodbye = True
        elif r < 0:
            self._check(r)
        ready, self._ready = self._ready, []
        for i, (cb, reply, error) in enumerate(ready):
            self._ran += 1
            try:
                cb(reply, error)
            except BaseException:
                self._ready[:0] = ready[i + 1:]
                raise
        return len(ready)

    def process(self):
        """Reads every message waiting, without blocking, and runs the
        callbacks, responders and request callbacks they are for.  Returns
        how many ran."""
        self._ran = 0
        self._pump(0)
        n = self._ran
        for sub in list(self._subs.values()):
            if sub._callback is not None or sub._serve is not None:
                n += sub._run_callbacks()
        return n

    def run(self, timeout=None):
        """Runs process() whenever something arrives, for timeout seconds
        (None: until stop(), or the daemon says goodbye)."""
        self._stopped = False
        end = None if timeout is None else time.monotonic() + timeout
        fd = self.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not self._stopped and not self._goodbye:
            self.process()
            if self._stopped or self._goodbye:
                break
            ms = -1 if end is None else \
                max(0, int((end - time.monotonic()) * 1000))
            if end is not None and ms == 0:
                break
            t = _ffi.lib().mqbus_get_timeout(self._handle())
            if t >= 0 and (ms < 0 or t < ms):
                ms = t
            poller.poll(ms)

    def stop(self):
        """Makes run() return (call it from a callback)."""
        self._stopped = True

    # ---------------------------------------------------------- asyncio

    def attach(self):
        """Has the running asyncio loop watch fileno() (loop.add_reader)
        and run process() whenever the bus is readable or an asynchronous
        request times out, so that callbacks and responders run from the
        loop.  subscribe_async() and arequest() attach by themselves."""
        self._attach_loop()

    def detach(self):
        """Stops the loop's watching of fileno()."""
        if self._loop is not None:
            self._detach_loop()

    def _attach_loop(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self._detach_loop()
            loop.add_reader(self.fileno(), self._on_readable)
            self._loop = loop
        loop.call_soon(self._on_readable)

    def _detach_loop(self):
        try:
            if not self._loop.is_closed():
                self._loop.remove_reader(self.fileno())
        except Exception:
            pass
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self._loop = None

    def _kick(self):
        # messages that a blocking call kept aside do not make the fd
        # readable: have the loop's reader look at once
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon(self._on_readable)

    def _on_readable(self):
        if self._b is None:
            return
        self.process()
        if self._goodbye:
            self._detach_loop()
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        t = _ffi.lib().mqbus_get_timeout(self._b)
        if t >= 0 and self._loop is not None:
            self._timer_handle = self._loop.call_later(t / 1000,
                                                       self._on_readable)

    def __repr__(self):
        state = "closed" if self._b is None else f"client {self.client_id}"
        return f"<mqbus.Bus {self.name!r} {state}>"
