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

"""The process budget of writes in flight: fair parts, nothing starves."""

import os

from glance_progress_store.upload import budget

CHUNK = 8


def take_all(share):
    taken = 0
    while share.try_take(CHUNK):
        taken += CHUNK
    return taken


def test_one_upload_alone_gets_the_whole_budget():
    process = budget.ProcessBudget(64)
    with process.share() as share:
        assert take_all(share) == 64
    assert (process.used, process.uploads, process.peak) == (0, 0, 64)


def test_a_new_upload_gets_its_part_once_the_first_gives_some_back():
    process = budget.ProcessBudget(64)
    with process.share() as first:
        take_all(first)
        with process.share() as second:
            # The first holds everything: the second waits for its own
            # first write (free) until the first's writes complete ...
            assert not second.try_take(CHUNK)
            # ... and the first may not take again beyond its half.
            first.give_back(CHUNK)
            assert not first.try_take(CHUNK)
            for _ in range(3):
                first.give_back(CHUNK)
            assert take_all(second) == 32
            assert take_all(first) == 0
            assert process.used == 64
        assert process.used == first.held == 32
        assert take_all(first) == 32


def test_sixteen_uploads_share_it_in_equal_parts():
    process = budget.ProcessBudget(128)
    shares = [process.share().__enter__() for _ in range(16)]
    assert [take_all(share) for share in shares] == [CHUNK] * 16
    assert process.used == process.capacity
    for share in shares:
        share.__exit__(None, None, None)
    assert (process.used, process.uploads) == (0, 0)


def test_a_budget_below_a_chunk_refuses_every_write_beyond_the_first():
    process = budget.ProcessBudget(CHUNK - 1)
    with process.share() as share:
        assert take_all(share) == 0


def test_what_a_failed_upload_still_holds_goes_back_with_it():
    process = budget.ProcessBudget(64)
    try:
        with process.share() as share:
            take_all(share)
            raise RuntimeError('Ceph refused a write')
    except RuntimeError:
        pass
    assert (process.used, process.uploads) == (0, 0)


def test_each_store_has_its_own_budget_and_follows_its_option():
    fast = budget.for_store('test-fast', 64)
    assert budget.for_store('test-fast', 128) is fast
    assert fast.capacity == 128
    assert budget.for_store('test-slow', 64) is not fast


def test_a_forked_child_starts_with_no_uploads():
    process = budget.for_store('test-fork', 64)
    share = process.share().__enter__()
    take_all(share)
    pid = os.fork()
    if pid == 0:
        child = budget.for_store('test-fork', 64)
        os._exit(0 if child is not process and child.used == 0 else 1)
    _, status = os.waitpid(pid, 0)
    share.__exit__(None, None, None)
    assert os.waitstatus_to_exitcode(status) == 0
