# SPDX-License-Identifier: MIT
"""conftest - fixtures of the mqbus package's tests.

The tests talk to a real mqbusd: tests/python.sh starts one on a bus of its
own and runs pytest with MQBUS_BUS naming it and MQBUS_LIBRARY pointing at
the build tree's libmqbus.  Every test uses topics under a prefix of its
own, since the daemon (and its retained values) lives through them all.
"""

import os
import re
import threading

import pytest

import mqbus


def pytest_configure(config):
    if not os.environ.get("MQBUS_BUS"):
        raise pytest.UsageError("MQBUS_BUS must name the bus of a running "
                                "mqbusd (tests/python.sh starts one)")


@pytest.fixture
def prefix(request):
    """A topic prefix of this test's own."""
    return "py/" + re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)


@pytest.fixture
def bus():
    with mqbus.Bus() as b:
        yield b


@pytest.fixture
def other():
    """A second client, e.g. the publisher or the responder."""
    with mqbus.Bus() as b:
        yield b


class Runner:
    """Runs bus.run() in a thread until stopped."""

    def __init__(self, bus):
        self.bus = bus
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            while not self.done.is_set():
                self.bus.run(timeout=0.05)
        except BaseException as e:
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.fixture
def runner():
    return Runner
