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

"""What an operator sees of a record: formatting, states, exit codes."""

import pytest

from glance_progress_store.read import states
from glance_progress_store.read import views as views_mod
from glance_progress_store import records
from tests.cli_helpers import GiB
from tests.cli_helpers import MiB


@pytest.mark.parametrize('nbytes, text', [
    (0, '0 B'), (1023, '1023 B'), (1024, '1.0 KiB'), (1536, '1.5 KiB'),
    (int(1.2 * GiB), '1.2 GiB'), (1024 * 1024 - 1, '1.0 MiB'),
    (None, '?')])
def test_human_size(nbytes, text):
    assert views_mod.human_size(nbytes) == text


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (44.6, '45s'), (65, '1m05s'), (3600, '1h00m'),
    (7380, '2h03m'), (3 * 86400 + 4 * 3600, '3d04h'), (-3, '0s'),
    (None, '?')])
def test_human_duration(seconds, text):
    assert views_mod.human_duration(seconds) == text


def test_human_rate():
    assert views_mod.human_rate(50 * MiB) == '50.0 MiB/s'
    assert views_mod.human_rate(None) == '?'


def test_view_of_uploading_has_rate_eta_and_age():
    rec = records.ProgressRecord('uploading', 60 * MiB, 100 * MiB, None,
                                 1000.0, 1006.0)
    view = views_mod.view_of('i', None, rec, now=1008.0, stall_after=60)
    assert view.state == 'uploading'
    assert view.percent == 60.0
    assert view.rate_bytes_per_s == 10 * MiB  # 60 MiB in 6 s
    assert view.eta_s == 2.0  # 4 s left at the last update, 2 s ago
    assert view.age_s == 2.0


def test_view_of_stalled_and_final_states():
    rec = records.ProgressRecord('finalizing', 5, 5, None, 0.0, 10.0)
    assert views_mod.view_of('i', None, rec, 71.0, 60).state == 'stalled'
    assert views_mod.view_of('i', None, rec, 69.0, 60).state == 'finalizing'
    stalled = views_mod.view_of('i', None, rec, 71.0, 60)
    assert stalled.eta_s is None
    old = records.ProgressRecord('stored', 5, 5, None, 0.0, 10.0)
    assert views_mod.view_of('i', None, old, 1e6, 60).state == 'stored'
    assert views_mod.view_of('i', 'b', None, 1.0, 60).state == 'unknown'


def test_view_of_unknown_size_has_no_percent_nor_eta():
    rec = records.ProgressRecord('uploading', 10, None, None, 0.0, 5.0)
    view = views_mod.view_of('i', None, rec, 5.0, 60)
    assert (view.percent, view.eta_s, view.rate_bytes_per_s) == (
        None, None, 2.0)


def test_plain_line_is_stable():
    rec = records.ProgressRecord('uploading', 512, 1024, 'ceph1', 0.0, 2.0)
    view = views_mod.view_of('img', 'ceph1', rec, 2.0, 60)
    assert views_mod.plain_line(view) == \
        'img ceph1 uploading 512/1024 50.0% 256B/s 2s'
    rec = records.ProgressRecord('failed', 3, None, None, 0.0, 1.0, 'io')
    view = views_mod.view_of('img', None, rec, 1.0, 60)
    assert views_mod.plain_line(view) == 'img - failed 3/? - 3B/s - io'


def test_exit_code_highest_wins():
    views = [views_mod.View('a', None, s)
             for s in ('stored', 'failed', 'stalled')]
    assert views_mod.exit_code(views) == states.EXIT_STALLED
    assert views_mod.exit_code([views_mod.View('a', None, 'uploading')]) == 0


def test_a_stored_empty_image_reads_complete():
    record = records.ProgressRecord('stored', 0, 0, None, 10.0, 10.5)
    view = views_mod.view_of('empty', None, record, 11.0, 60)
    assert (view.total, view.percent) == (0, 100.0)
    text = views_mod.describe(view)
    assert 'progress: 0 B / 0 B (100.0%)' in text
    assert 'size not known yet' not in text
    assert views_mod.plain_line(view).split()[3:5] == ['0/0', '100.0%']
