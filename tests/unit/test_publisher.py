# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The publisher's degraded branches, with a scripted connection.

A real memcached cannot be made to raise an unexpected exception inside
the client, or to fail exactly the n-th call, on demand: these tests swap
:class:`glance_progress_store._memcache.Connection` for a fake that does.
What real servers can show (freezes, a dead server, restarts) is tested
against real memcached in tests/functional.
"""

import logging
import threading
import time

import pytest

import testbed  # tools/ is on sys.path (tests/conftest.py)

from glance_progress_store import _memcache
from glance_progress_store.upload import publisher


class FakeConnection:
    """Stores into a dict; ``script`` says what each set call does."""

    script = []  # per set call: None (store), or an exception to raise
    store = {}
    probes = 0
    lock = threading.Lock()

    def __init__(self, server, socket_timeout):
        self.server = server

    def set_many(self, values, ttl):
        with self.lock:
            action = type(self).script.pop(0) if type(self).script else None
        if action is not None:
            raise action
        self.store.update(values)

    def version(self):
        type(self).probes += 1
        return '1.6'

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    FakeConnection.script = []
    FakeConnection.store = {}
    FakeConnection.probes = 0
    monkeypatch.setattr(_memcache, 'Connection', FakeConnection)
    monkeypatch.setattr(publisher, 'SETTLE', 0.01)
    monkeypatch.setattr(publisher, '_RETRY_FIRST', 0.01)
    return FakeConnection


def _wait(what, predicate, timeout=30):
    return testbed.wait_for(what, predicate, timeout, interval=0.005)


def test_unexpected_error_never_kills_the_thread(fake, caplog):
    fake.script = [RuntimeError('client bug')]
    pub = publisher.Publisher(['127.0.0.1:1'], 0.1)
    with caplog.at_level(logging.WARNING):
        pub.submit(('', 'a', None), {'a_upload_status': b'1'}, 60)
        _wait('the first write', lambda: fake.store.get(
            'a_upload_status') == b'1')
    thread = pub._thread
    assert thread.is_alive()
    assert 'publisher error' in caplog.text
    pub.submit(('', 'b', None), {'b_upload_status': b'2'}, 60,
               final=True)
    assert pub.flush(('', 'b', None), 5)
    assert pub._thread is thread  # the same thread carried on


@pytest.mark.filterwarnings(
    'ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_dead_thread_is_restarted_by_the_next_submit(fake):
    fake.script = [SystemExit()]  # escapes the thread's except Exception
    pub = publisher.Publisher(['127.0.0.1:1'], 0.1)
    pub.submit(('', 'a', None), {'a_upload_status': b'1'}, 60)
    _wait('the thread to die', lambda: not pub._thread.is_alive())
    pub.submit(('', 'a', None), {'a_upload_status': b'2'}, 60,
               final=True)
    assert pub.flush(('', 'a', None), 5)
    assert fake.store['a_upload_status'] == b'2'


class ThreadBoundConnection(FakeConnection):
    """Usable only in the thread that made it, like python-memcached's
    client (a threading.local): a real client used from another thread
    quietly opens connections of its own, which no test can tell apart
    from the right ones; this one fails loudly instead."""

    made = []

    def __init__(self, server, socket_timeout):
        super().__init__(server, socket_timeout)
        self.thread = threading.current_thread()
        self.closed = False
        type(self).made.append(self)

    def set_many(self, values, ttl):
        assert threading.current_thread() is self.thread, (
            'a connection used outside the thread that made it')
        super().set_many(values, ttl)

    def close(self):  # from any thread: it only closes the socket
        self.closed = True


@pytest.mark.filterwarnings(
    'ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_restarted_thread_opens_its_own_connection(fake, monkeypatch):
    monkeypatch.setattr(_memcache, 'Connection', ThreadBoundConnection)
    ThreadBoundConnection.made = []
    fake.script = [None, SystemExit()]  # the second write kills the thread
    pub = publisher.Publisher(['127.0.0.1:1'], 0.1)
    token = ('', 'a', None)
    pub.submit(token, {'a_upload_status': b'1'}, 60)
    assert pub.flush(token, 5)
    dead = pub._thread
    pub.submit(token, {'a_upload_status': b'2'}, 60)
    _wait('the thread to die', lambda: not dead.is_alive())
    pub.submit(token, {'a_upload_status': b'3'}, 60, final=True)
    assert pub.flush(token, 5)
    assert fake.store['a_upload_status'] == b'3'
    first, second = ThreadBoundConnection.made
    assert (first.thread, second.thread) == (dead, pub._thread)
    assert first.closed and not second.closed


def test_failed_server_is_probed_then_written_after_settle(fake):
    fake.script = [_memcache.ServerUnavailable('s', 'did not answer')]
    pub = publisher.Publisher(['127.0.0.1:1'], 0.1)
    pub.submit(('', 'a', None), {'a_upload_status': b'old'}, 60)
    _wait('a failed write', lambda: pub.stats.server_failures == 1)
    # a newer state while the server is down replaces the failed one
    pub.submit(('', 'a', None), {'a_upload_status': b'new'}, 60,
               final=True)
    _wait('the newest state written', lambda: fake.store.get(
        'a_upload_status') == b'new')
    assert fake.probes == 1
    assert pub.stats.updates_sent == 1  # only the newest was sent


def test_flush_does_not_wait_for_a_server_known_down(fake, monkeypatch):
    monkeypatch.setattr(publisher, '_RETRY_FIRST', 30)
    fake.script = [_memcache.ServerUnavailable('s', 'refused')]
    pub = publisher.Publisher(['127.0.0.1:1'], 5.0)
    token = ('', 'a', None)
    pub.submit(token, {'a_upload_status': b'1'}, 60)
    _wait('a failed write', lambda: pub.stats.server_failures == 1)
    pub.submit(token, {'a_upload_status': b'2'}, 60, final=True)
    began = time.monotonic()
    assert pub.flush(token, 5.0, skip_down=True) is False
    assert time.monotonic() - began < 0.5


def test_pending_is_bounded_and_warned_about_once(fake, monkeypatch, caplog):
    monkeypatch.setattr(publisher, 'MAX_PENDING', 10)
    monkeypatch.setattr(publisher, '_RETRY_FIRST', 30)  # stays down
    fake.script = [_memcache.ServerUnavailable('s', 'refused')]
    pub = publisher.Publisher(['127.0.0.1:1'], 0.1)
    pub.submit(('', 'first', None), {'first_upload_status': b'x'}, 60)
    _wait('a failed write', lambda: pub.stats.server_failures == 1)
    with caplog.at_level(logging.WARNING):
        pub.submit(('', 'final', None), {'final_upload_status': b'f'},
                   60, final=True)
        for n in range(50):
            pub.submit(('', str(n), None),
                       {'%d_upload_status' % n: b'u'}, 60)
    queue = pub._queues[0]
    assert len(queue.pending) == 10
    assert ('', 'final', None) in queue.pending  # final states kept first
    drops = [r for r in caplog.records if 'dropping' in r.getMessage()]
    assert len(drops) == 1


def test_records_are_given_up_after_their_retry_window(fake, monkeypatch):
    monkeypatch.setattr(publisher, 'MAX_RETRY_WINDOW', 0.05)
    fake.script = [_memcache.ServerUnavailable('s', 'refused')] * 3
    pub = publisher.Publisher(['127.0.0.1:1'], 0.1)
    pub.submit(('', 'a', None), {'a_upload_status': b'1'}, 60)
    _wait('the record given up', lambda: fake.probes >= 1 and not (
        pub._queues[0].pending))
    assert 'a_upload_status' not in fake.store


def test_keys_go_to_their_own_server(fake):
    pub = publisher.Publisher(['127.0.0.1:1', '127.0.0.1:2'], 0.1)
    values = {'%d_upload_status' % n: b'%d' % n for n in range(20)}
    pub.submit(('', 'x', None), values, 60, final=True)
    assert pub.flush(('', 'x', None), 5)
    assert fake.store == values
    lanes = {_memcache.server_index(k, 2) for k in values}
    assert lanes == {0, 1}
