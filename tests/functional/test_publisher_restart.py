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

"""A publisher thread that died is replaced by one that works as the first.

The thread catches every ``Exception``; what kills it is a
``BaseException`` raised inside a call it makes (``SystemExit`` from a
library, a green thread's ``GreenletExit``). Nothing the publisher calls
raises one on demand, so the test raises one in the thread with
CPython's ``PyThreadState_SetAsyncExc``, while the thread waits for a
frozen memcached inside a write: outside the publisher's lock, where a
real one would strike. The next upload's update starts a new thread,
which must see a server that goes down (python-memcached's client is
bound to the thread that made it: the dead thread's connection would
hide the failure) and publish once it is back.
"""

import ctypes
import logging
import uuid

import pytest

from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records
from glance_progress_store.upload import publisher
from tests import helpers

TIMEOUT = 1.0  # the thread waits this long in the frozen server's read
INDEX = (600, 600)  # listed for discovery: (index TTL, retention)


def _publish(pub, image_id, state, final=False, index=None):
    record = records.ProgressRecord(state, 10, 10, None, 1.0, 2.0)
    token = ('', image_id, None)
    pub.submit(token, records.key_values(records.keys_for(image_id),
                                         record), 600, final, index=index)
    return token


def _kill(thread):
    """Raise SystemExit in ``thread`` (at its next Python instruction)."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
    assert done == 1, done


@pytest.mark.filterwarnings(  # the SystemExit that kills the thread
    'ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_restarted_thread_sees_failures_and_publishes(live_memcached,
                                                        caplog):
    server = live_memcached
    pub = publisher.Publisher([server.address], TIMEOUT)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert pub.flush(_publish(pub, first, 'uploading'), 10)
    dead = pub._thread

    server.pause()
    _publish(pub, first, 'uploading')
    helpers.wait_for('the thread to be writing', lambda: (
        pub._queues[0].in_flight), 10, interval=0.01)
    _kill(dead)
    helpers.wait_for('the thread to die', lambda: not dead.is_alive(),
                     TIMEOUT + 10, interval=0.01)
    server.resume()

    server.stop()  # refuses connections: the new thread must notice
    with caplog.at_level(logging.WARNING, logger=publisher.__name__):
        token = _publish(pub, second, 'stored', final=True, index=INDEX)
        helpers.wait_for(
            'the restarted thread to find the server down', lambda: (
                'Could not publish upload progress of %s to memcached %s'
                % (second, server.address)) in caplog.text,
            publisher._RETRY_MAX + 10, interval=0.05)
    assert pub._thread is not dead and pub._thread.is_alive()
    assert pub.stats.probes >= 1

    server.start()  # empty, on the same address
    assert pub.flush(token, publisher._RETRY_MAX + publisher.SETTLE + 10)
    reader = reader_mod.ProgressReader([server.address])
    assert reader.get(second).state == 'stored'
    # the dead thread's update was sent again by the new one
    helpers.wait_record(reader, first, state='uploading')
