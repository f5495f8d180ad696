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

"""The wire contract's values and the key rule, without a memcached."""

import json

import pytest

from glance_progress_store import records


def test_values_are_ascii_decimal_and_utf8_json_bytes():
    keys = records.keys_for('abc')
    record = records.ProgressRecord('uploading', 5, None, 'ceph1', 1.0, 2.0)
    values = records.key_values(keys, record)
    assert values == {
        'abc_total_size': b'0',  # 0 while the size is unknown
        'abc_uploading_size': b'5',
        'abc_upload_status': record.to_json().encode('utf-8'),
    }
    assert json.loads(values['abc_upload_status']) == {
        'state': 'uploading', 'bytes': 5, 'total': None,
        'backend': 'ceph1', 'started_at': 1.0, 'updated_at': 2.0,
        'reason': None}


@pytest.mark.parametrize('state,nbytes,total,percent', [
    ('stored', 0, 0, 100.0),  # a stored empty image is complete
    ('uploading', 0, None, None),  # size not known yet
    ('uploading', 5, 10, 50.0),
    ('stored', 10, 10, 100.0),
    ('failed', 0, 0, None),
])
def test_percent(state, nbytes, total, percent):
    record = records.ProgressRecord(state, nbytes, total, None, 1.0, 2.0)
    assert record.percent == percent


@pytest.mark.parametrize('prefix,problem', [
    ('', None), ('region-1/', None), ('a' * 100, None),
    ('has space', 'printable ASCII'), ('tab\t', 'printable ASCII'),
    ('é', 'printable ASCII'), ('a' * 101, 'at most 100'),
])
def test_prefix_rule_is_the_key_rule(prefix, problem):
    result = records.check_prefix(prefix)
    assert (result is None) if problem is None else (problem in result)
    if problem is None:
        keys = records.keys_for('id', prefix=prefix)
        assert keys.status == prefix + 'id_upload_status'
