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

"""The OpenStackClient plugin is declared, and imports without glance.

``openstack`` runs on users' machines, where neither glance nor Ceph's
bindings are installed: the plugin must not pull them in.
"""

import configparser
import pathlib
import subprocess
import sys

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
