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

"""The OpenStackClient plugin is declared, imports without glance, and
its ``list`` and ``find_image`` do what e2e cannot make glance do on
demand (answers held back, out of order, counted while they wait).

``openstack`` runs on users' machines, where neither glance nor Ceph's
bindings are installed: the plugin must not pull them in.
"""

import configparser
import io
import json
import logging
import pathlib
import subprocess
import sys
import threading
import types
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = ('glance_progress_store.osc.plugin',
           'glance_progress_store.osc.http',
           'glance_progress_store.osc.wait',
           'glance_progress_store.osc.v1.progress')
# a None in sys.modules makes `import NAME` fail
ABSENT = ('glance', 'glance_store', 'rados', 'rbd', 'webob')


def test_entry_points_are_declared():
    cfg = configparser.ConfigParser()
    cfg.optionxform = str
    cfg.read(ROOT / 'setup.cfg')
    points = cfg['options.entry_points']
    assert points['openstack.cli.extension'].split() == [
        'image_progress', '=', 'glance_progress_store.osc.plugin']
    commands = dict(
        line.replace(' ', '').split('=')
        for line in points['openstack.image_progress.v1'].splitlines()
        if line)
    assert commands == {
        'image_progress_show':
            'glance_progress_store.osc.v1.progress:ShowProgress',
        'image_progress_list':
            'glance_progress_store.osc.v1.progress:ListProgress'}


def test_plugin_imports_without_glance():
    code = ('import sys\n'
            'for name in %r: sys.modules[name] = None\n'
            'import importlib\n'
            'mods = [importlib.import_module(m) for m in %r]\n'
            'p = mods[0]\n'
            'assert p.API_NAME == "image_progress", p.API_NAME\n'
            'assert p.API_VERSION_OPTION == "os_image_progress_api_version"\n'
            'assert list(p.API_VERSIONS) == ["1"]\n'
            'assert callable(p.make_client)\n'
            'assert callable(p.build_option_parser)\n'
            'assert mods[3].ShowProgress and mods[3].ListProgress\n'
            'print("ok")\n' % (ABSENT, MODULES))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert (proc.returncode, proc.stdout) == (0, 'ok\n'), proc.stderr


def test_commands_resolve_to_the_classes():
    from glance_progress_store.osc.v1 import progress
    from osc_lib.command import command
    assert issubclass(progress.ShowProgress, command.ShowOne)
    assert issubclass(progress.ListProgress, command.Lister)


# -- list and find_image, on a fake client of the endpoint --------------------
# The real endpoint is glance-api with the filter (tests/e2e/test_osc.py);
# a fake client is what can hold answers back, answer them out of order,
# and count how many calls wait at once.

class FakeClient:
    """``ProgressClient``'s calls: the image list, and per image a body or
    an exception (``answers``), after ``before(image_id)`` returns."""

    def __init__(self, answers, before=lambda image_id: None):
        self.answers = answers
        self.before = before
        self.lock = threading.Lock()
        self.running = self.most = 0

    def images(self, **filters):
        return [{'id': i, 'name': 'name-' + i, 'owner': 'p',
                 'status': 'saving'} for i in self.answers]

    def progress(self, image_id, backend=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.before(image_id)
        finally:
            with self.lock:
                self.running -= 1
        answer = self.answers[image_id]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _body(image_id, state='uploading'):
    return {'image_id': image_id, 'backend': None, 'state': state,
            'percent': 50.0, 'image_status': 'saving', 'reason': None}


def _list(client, *args):
    """(exit code, rows of -f json, stderr) of ``image progress list``."""
    from glance_progress_store.osc.v1 import progress
    app = types.SimpleNamespace(
        stdout=io.StringIO(), stderr=io.StringIO(), options=None,
        client_manager=types.SimpleNamespace(image_progress=client))
    command = progress.ListProgress(app, None)
    parsed = command.get_parser('openstack image progress list').parse_args(
        ['--all-projects', '-f', 'json'] + list(args))
    code = command.run(parsed)
    return code, json.loads(app.stdout.getvalue())


def test_list_asks_a_few_images_at_a_time_in_their_order():
    from glance_progress_store.osc.v1 import progress
    # every call waits until PARALLEL of them wait: one after the other,
    # the first would wait alone and break the barrier
    barrier = threading.Barrier(progress.PARALLEL, timeout=30)
    ids = ['image-%d' % n for n in range(3 * progress.PARALLEL)]
    client = FakeClient({i: _body(i) for i in ids},
                        before=lambda image_id: barrier.wait())
    code, rows = _list(client)
    assert code == 0
    assert [row['ID'] for row in rows] == ids
    assert client.most == progress.PARALLEL


def test_list_keeps_the_image_order_when_answers_come_out_of_it():
    others_answered = threading.Event()
    ids = ['first', 'second', 'third']

    def before(image_id):
        if image_id == 'first':
            assert others_answered.wait(30)
        elif image_id == 'third':
            others_answered.set()

    code, rows = _list(FakeClient({i: _body(i) for i in ids}, before))
    assert (code, [row['ID'] for row in rows]) == (0, ids)


def test_list_shows_an_error_in_its_row_and_exits_1(caplog):
    from glance_progress_store.osc import http
    from glance_progress_store.osc.v1 import progress
    from osc_lib import exceptions
    error = ('glance could not give the upload progress of b: HTTP 503: '
             'Service Unavailable: upload progress is unavailable')
    client = FakeClient({
        'a': _body('a'),
        'b': exceptions.CommandError(error),
        'gone': http.NotFound('No image with ID gone exists'),
        'c': dict(_body('c'), backends={
            'ceph2': _body('c', 'stored'), 'ceph1': _body('c')}),
    })
    with caplog.at_level(logging.ERROR):
        code, rows = _list(client, '--long')
    assert code == progress.EXIT_SOME_UNAVAILABLE == 1
    assert [(row['ID'], row['State']) for row in rows] == [
        ('a', 'uploading'), ('b', 'unavailable'), ('c', 'uploading'),
        ('c', 'stored')]
    row = rows[1]
    assert (row['Name'], row['Image Status'], row['Reason'],
            row['Percent']) == ('name-b', 'saving', error, None)
    assert caplog.messages == ['No upload progress of image b: ' + error]


def test_list_without_the_filter_says_so_once():
    # A glance without upload_progress answers no image's progress: the
    # list ends with that one error, not a row "unavailable" per image.
    from glance_progress_store.osc import http
    from osc_lib import exceptions
    missing = http.NoProgressEndpoint(
        'glance at http://glance:9292 does not serve upload progress')
    client = FakeClient({'a': missing, 'b': missing})
    with pytest.raises(exceptions.CommandError) as raised:
        _list(client)
    assert raised.value is missing


def test_find_image_gives_glances_id():
    from glance_progress_store.osc import http
    asked = str(uuid.uuid4()).upper()  # MySQL finds it in any case

    class Session:
        def get(self, url, **kwargs):
            assert url.endswith('/v2/images/' + asked)
            return types.SimpleNamespace(
                status_code=200, json=lambda: {'id': asked.lower()})

    client = http.ProgressClient(Session(), 'http://glance:9292/v2')
    assert client.find_image(asked) == asked.lower()
