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


V1 = {'state': 'uploading', 'bytes': 5, 'total': 10, 'backend': None,
      'started_at': 1.0, 'updated_at': 2.0, 'reason': None}


def test_this_release_writes_exactly_the_v1_fields():
    record = records.ProgressRecord(**V1)
    assert json.loads(record.to_json()) == V1  # no "v": it is 1


@pytest.mark.parametrize('added', [
    {'host': 'glance-3', 'pid': 1234},  # a newer writer's fields
    {'v': 1},  # an explicit version 1
    {'chunk_size': 8388608, 'reason_detail': {'errno': 28}},
])
def test_a_newer_writer_s_added_fields_are_ignored(added):
    # before: any field set other than exactly V1's was a BadRecord, so
    # a rolling upgrade turned every older reader's view into "bad"
    record = records.ProgressRecord.from_json(json.dumps(dict(V1, **added)))
    assert record == records.ProgressRecord(**V1)


@pytest.mark.parametrize('data, why', [
    (dict(V1, v=2), 'contract version'),
    (dict(V1, v='2'), 'contract version'),
    ({k: v for k, v in V1.items() if k != 'reason'}, 'no reason'),
    ({k: v for k, v in V1.items() if k != 'bytes'}, 'no bytes'),
    (dict(V1, bytes='5'), 'bad value for bytes'),
    (dict(V1, state='verifying'), 'bad value for state'),
    ([V1], 'not a JSON object'),
])
def test_known_fields_are_still_checked(data, why):
    with pytest.raises(records.BadRecord, match=why):
        records.ProgressRecord.from_json(json.dumps(data))


def test_an_index_entry_with_more_items_keeps_its_first_three():
    value = json.dumps({'host': 'h', 'pid': 1, 'updated_at': 3.0,
                        'uploads': [['a', None, None, 'new-item'],
                                    ['b', 'ceph1', 4.0, 5, {'x': 1}]],
                        'added_field': True}).encode()
    assert records.parse_index(value) == [
        records.IndexEntry('a', None, None),
        records.IndexEntry('b', 'ceph1', 4.0)]


@pytest.mark.parametrize('uploads', [
    [['a', None]],  # too few items
    [[1, None, None]],
    [['a', 5, None]],
])
def test_an_index_entry_missing_what_readers_need_is_bad(uploads):
    with pytest.raises(records.BadRecord):
        records.parse_index(json.dumps({'uploads': uploads}).encode())


def test_an_index_or_registry_of_another_version_is_bad():
    with pytest.raises(records.BadRecord, match='contract version'):
        records.parse_index(json.dumps({'v': 2, 'uploads': []}).encode())
    with pytest.raises(records.BadRecord, match='contract version'):
        records.parse_registry(json.dumps({'v': 2, 'indexes': {}}).encode())
    assert records.parse_registry(json.dumps(
        {'indexes': {'k': 1.0}, 'added': 1}).encode()) == {'k': 1.0}


def test_the_store_writes_only_the_reasons_the_contract_names():
    import ast
    import pathlib
    store = pathlib.Path(records.__file__).with_name('store.py')
    tree = ast.parse(store.read_text())
    returned = {node.attr for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and
                isinstance(node.value, ast.Name) and
                node.value.id == 'records' and node.attr.isupper()}
    reasons = {name for name in returned
               if getattr(records, name) in records.REASONS}
    assert {getattr(records, n) for n in reasons} == set(records.REASONS)
