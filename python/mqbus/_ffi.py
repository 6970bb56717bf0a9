# SPDX-License-Identifier: MIT
"""_ffi - the one place where mqbus.h is declared to ctypes.

Every function, struct and constant of <mqbus.h> that the package uses is
declared here, once, and nowhere else: the rest of the package calls
lib().mqbus_* through these declarations.  The library is found on first
use: $MQBUS_LIBRARY (a path, e.g. a build tree's client/.libs/libmqbus.so)
when set, else ctypes.util.find_library("mqbus"), else the soname
libmqbus.so.1 through the dynamic loader's search path.
"""

import ctypes
import ctypes.util
import errno
import os

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_long,
                    c_size_t, c_uint, c_uint32, c_uint64, c_void_p)

SONAME = "libmqbus.so.1"

PRIORITY_DEFAULT = -1
PUBLISH_RETAIN = 0x1
KEY_MAX = 255
TIMER_DETACHED = 0x1
TIMER_ABSOLUTE = 0x2
OPTS_SIZE_MAX = 4096

c_uid_t = c_uint32
c_pid_t = c_int


class bus_p(c_void_p):
    """mqbus * (opaque)."""


class msg_p(c_void_p):
    """mqbus_msg * (opaque)."""


class publish_opts(Structure):
    _fields_ = [("size", c_size_t), ("priority", c_int), ("flags", c_uint),
                ("key", c_char_p)]


class request_opts(Structure):
    _fields_ = [("size", c_size_t), ("priority", c_int),
                ("timeout_ms", c_int)]


class timer_add_opts(Structure):
    _fields_ = [("size", c_size_t), ("priority", c_int), ("flags", c_uint),
                ("key", c_char_p), ("when", c_uint64),
                ("period_ms", c_uint64)]


class origin(Structure):
    """struct mqbus_origin (LIBMQBUS_1.7)."""
    _fields_ = [("uid", c_uid_t), ("pid", c_pid_t), ("user", c_char_p),
                ("host", c_char_p), ("bridge", c_char_p)]


def publish_opts_init():
    """MQBUS_PUBLISH_OPTS_INIT."""
    return publish_opts(ctypes.sizeof(publish_opts), PRIORITY_DEFAULT, 0,
                        None)


def request_opts_init():
    """MQBUS_REQUEST_OPTS_INIT."""
    return request_opts(ctypes.sizeof(request_opts), PRIORITY_DEFAULT, -1)


def timer_add_opts_init():
    """MQBUS_TIMER_ADD_OPTS_INIT."""
    return timer_add_opts(ctypes.sizeof(timer_add_opts), PRIORITY_DEFAULT,
                          0, None, 0, 0)


handler = CFUNCTYPE(None, bus_p, msg_p, c_void_p)
reply_handler = CFUNCTYPE(None, bus_p, c_int, msg_p, c_void_p)

_p = POINTER
# name: (restype, argtypes); the order of <mqbus.h>.
FUNCTIONS = {
    "mqbus_new": (c_int, [_p(bus_p)]),
    "mqbus_set_bus": (c_int, [bus_p, c_char_p]),
    "mqbus_set_queue_size": (c_int, [bus_p, c_long, c_long]),
    "mqbus_get_queue_size": (c_int, [bus_p, _p(c_long), _p(c_long)]),
    "mqbus_queue_bytes": (c_size_t, [c_long, c_long]),
    "mqbus_set_timeout": (c_int, [bus_p, c_int]),
    "mqbus_connect": (c_int, [bus_p]),
    "mqbus_open": (c_int, [_p(bus_p), c_char_p]),
    "mqbus_free": (bus_p, [bus_p]),
    "mqbus_last_error": (c_char_p, [bus_p]),
    "mqbus_client_id": (c_uint32, [bus_p]),
    "mqbus_max_payload": (c_size_t, [bus_p, c_char_p]),
    "mqbus_publish_opts": (c_int, [bus_p, c_char_p, c_void_p, c_size_t,
                                   _p(publish_opts)]),
    "mqbus_subscribe": (c_int, [bus_p, c_char_p]),
    "mqbus_unsubscribe": (c_int, [bus_p, c_char_p]),
    "mqbus_subscribe_group": (c_int, [bus_p, c_char_p, c_char_p]),
    "mqbus_unsubscribe_group": (c_int, [bus_p, c_char_p, c_char_p]),
    "mqbus_request_opts": (c_int, [bus_p, c_char_p, c_void_p, c_size_t,
                                   _p(request_opts), _p(msg_p)]),
    "mqbus_request_async_opts": (c_int, [bus_p, c_char_p, c_void_p,
                                         c_size_t, _p(request_opts),
                                         reply_handler, c_void_p]),
    "mqbus_get_timeout": (c_int, [bus_p]),
    "mqbus_reply": (c_int, [bus_p, msg_p, c_void_p, c_size_t]),
    "mqbus_timer_add_opts": (c_int, [bus_p, c_char_p, c_void_p, c_size_t,
                                     _p(timer_add_opts), _p(c_uint64)]),
    "mqbus_timer_cancel": (c_int, [bus_p, c_uint64]),
    "mqbus_timer_list": (c_int, [bus_p, _p(c_void_p)]),
    "mqbus_receive": (c_int, [bus_p, _p(msg_p), c_int]),
    "mqbus_stats": (c_int, [bus_p, _p(c_void_p)]),
    "mqbus_query": (c_int, [bus_p, c_char_p, _p(c_void_p)]),
    "mqbus_sync": (c_int, [bus_p]),
    "mqbus_get_fd": (c_int, [bus_p]),
    "mqbus_set_handler": (None, [bus_p, handler, c_void_p]),
    "mqbus_process": (c_int, [bus_p]),
    "mqbus_msg_free": (msg_p, [msg_p]),
    "mqbus_msg_topic": (c_char_p, [msg_p]),
    "mqbus_msg_payload": (c_void_p, [msg_p, _p(c_size_t)]),
    "mqbus_msg_priority": (c_uint, [msg_p]),
    "mqbus_msg_sender_uid": (c_uid_t, [msg_p]),
    "mqbus_msg_sender_pid": (c_pid_t, [msg_p]),
    "mqbus_msg_client_id": (c_uint32, [msg_p]),
    "mqbus_msg_seq": (c_uint64, [msg_p]),
    "mqbus_msg_timestamp": (c_uint64, [msg_p]),
    "mqbus_msg_dropped": (c_uint32, [msg_p]),
    "mqbus_msg_key": (c_char_p, [msg_p]),
    "mqbus_msg_retained": (c_int, [msg_p]),
    "mqbus_msg_is_request": (c_int, [msg_p]),
    "mqbus_monitor": (c_int, [bus_p, c_char_p]),
    "mqbus_unmonitor": (c_int, [bus_p, c_char_p]),
    "mqbus_msg_is_monitored": (c_int, [msg_p]),
    "mqbus_msg_is_reply": (c_int, [msg_p]),
    "mqbus_msg_request_id": (c_uint32, [msg_p]),
    "mqbus_msg_is_drop_notice": (c_int, [msg_p]),
}

# Calls of later library versions: declared when the library has them.
OPTIONAL = {
    "mqbus_topic_match": (c_int, [c_char_p, c_char_p]),
    "mqbus_set_origin": (c_int, [bus_p, c_int]),
    "mqbus_msg_origin": (POINTER(origin), [msg_p]),
}

_lib = None
_free = None


def _load():
    path = os.environ.get("MQBUS_LIBRARY")
    tried = []
    if path:
        names = [path]
    else:
        names = [n for n in (ctypes.util.find_library("mqbus"), SONAME) if n]
    for name in names:
        try:
            return ctypes.CDLL(name, use_errno=False)
        except OSError as e:
            tried.append(str(e))
    raise OSError(errno.ENOENT, "cannot load libmqbus (install libmqbus1, "
                  "or set MQBUS_LIBRARY to the library's path): "
                  + "; ".join(tried))


def lib():
    """The loaded library with every call of FUNCTIONS declared."""
    global _lib
    if _lib is None:
        dll = _load()
        for name, (restype, argtypes) in FUNCTIONS.items():
            fn = getattr(dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
        for name, (restype, argtypes) in OPTIONAL.items():
            fn = getattr(dll, name, None)
            if fn is not None:
                fn.restype = restype
                fn.argtypes = argtypes
        _lib = dll
    return _lib


def free(ptr):
    """free(3) of a text the library allocated with malloc(3).  The symbol
    is looked up through the library's handle, so that it is the free of
    the malloc the library uses (an interposed one too, as in a sanitizer
    build), not necessarily libc's."""
    global _free
    if _free is None:
        _free = lib().free
        _free.argtypes = [c_void_p]
        _free.restype = None
    _free(ptr)
