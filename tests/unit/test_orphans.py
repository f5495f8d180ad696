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

"""Classifying unfinished images and quoting them for a shell (no Ceph)."""

import subprocess

import pytest

from glance_progress_store.ops import orphans
from glance_progress_store.ops import orphans_report
from glance_progress_store import records


@pytest.mark.parametrize('text, quoted', [
    ('0c9e2a17-5b7d-4e0f-8a61-6d2f3b9c4e10',
     '0c9e2a17-5b7d-4e0f-8a61-6d2f3b9c4e10'),
    ('with space', "'with space'"), ("it's", "'it'\"'\"'s'"),
    ('tab\there', "$'tab\\x09here'"), ("a'\x01\\", "$'a\\'\\x01\\\\'"),
    ('caf\u00e9', "'caf\u00e9'")])
def test_orphans_shell_word(text, quoted):
    assert orphans_report.shell_word(text) == quoted
    done = subprocess.run(['bash', '-c', 'printf %s ' + quoted],
                          capture_output=True, timeout=30)
    assert done.stdout.decode('utf-8') == text


def test_orphans_classify_boundaries():
    target = orphans.PoolTarget('images')
    partial = orphans.Partial(target, 'i', 1000.0, ())
    active = records.ProgressRecord('uploading', 1, 2, None, 900.0, 990.0)
    assert orphans.classify(partial, active, 1050.0, 60).state == \
        'in progress'
    assert orphans.classify(partial, active, 1050.1, 60).state == 'stalled'
    assert orphans.classify(partial, None, 1059.0, 60).state == 'new'
    assert orphans.classify(partial, None, 1060.0, 60).state == 'no record'
    unknown_age = orphans.Partial(target, 'i', None, ())
    finding = orphans.classify(unknown_age, None, 1001.0, 60)
    assert (finding.state, finding.age_s, finding.orphan) == (
        'no record', None, True)
    assert not orphans.classify(partial, active, 1000.0, 60).orphan
