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

"""The breaker's rules: when a memcached server is known down, who tries
it again, and when it is up.

A fake clock, and reads that are plain functions: the rules are about
time and about which read goes first, which a real memcached (frozen
with SIGSTOP in tests/e2e/test_progress_api.py) cannot show step by
step.
"""

import pytest

from glance_progress_store import _memcache
from glance_progress_store.read import breaker as breaker_mod

SERVER = '192.0.2.10:11211'


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def breaker(clock):
    return breaker_mod.Breaker(10.0, clock=clock)


def fail(breaker, server=SERVER):
    with pytest.raises(_memcache.ServerUnavailable) as raised:
        with breaker.read(server):
            raise _memcache.ServerUnavailable(server, 'did not answer get '
                                              'within 1 s')
    assert not isinstance(raised.value, breaker_mod.KnownDown)


def answer(breaker, server=SERVER):
    with breaker.read(server):
        return 'answered'


def refused(breaker, server=SERVER):
    with pytest.raises(breaker_mod.KnownDown) as raised:
        with breaker.read(server):
            pytest.fail('a known-down server was asked')
    return raised.value


def test_a_server_that_answers_is_always_asked(breaker):
    for _ in range(3):
        assert answer(breaker) == 'answered'


def test_a_failed_server_is_known_down_until_dead_retry(breaker, clock):
    fail(breaker)
    clock.now += 9.5
    down = refused(breaker)
    assert down.retry_after == 1  # whole seconds, rounded up
    assert down.server == SERVER
    assert 'known down' in str(down) and 'did not answer get' in str(down)
    clock.now += 0.5
    assert answer(breaker) == 'answered'  # tried again, and up
    assert answer(breaker) == 'answered'


def test_retry_after_counts_down(breaker, clock):
    fail(breaker)
    assert refused(breaker).retry_after == 10
    clock.now += 3.2
    assert refused(breaker).retry_after == 7


def test_one_read_at_a_time_tries_it_again(breaker, clock):
    fail(breaker)
    clock.now += 10
    with breaker.read(SERVER):  # this read tries it ...
        refused(breaker)  # ... the others do not wait on it meanwhile
        refused(breaker)
    assert answer(breaker) == 'answered'


def test_a_failed_retry_is_down_for_another_dead_retry(breaker, clock):
    fail(breaker)
    clock.now += 10
    fail(breaker)
    clock.now += 9
    refused(breaker)
    clock.now += 1
    assert answer(breaker) == 'answered'


def test_a_retry_without_a_verdict_lets_the_next_read_try(breaker, clock):
    fail(breaker)
    clock.now += 10
    with pytest.raises(KeyError):
        with breaker.read(SERVER):
            raise KeyError('not about the server')
    assert answer(breaker) == 'answered'


def test_servers_are_known_down_one_by_one(breaker):
    other = '192.0.2.11:11211'
    fail(breaker)
    refused(breaker)
    assert answer(breaker, other) == 'answered'


def test_zero_dead_retry_tries_again_on_the_next_read(clock):
    breaker = breaker_mod.Breaker(0.0, clock=clock)
    fail(breaker)
    fail(breaker)
    assert answer(breaker) == 'answered'
