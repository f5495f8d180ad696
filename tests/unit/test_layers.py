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

"""The package's layers, and what each may import.

The folders say where code runs (see the package docstring); this test
keeps them honest: the read side and the glance-progress read commands
run on a bastion host without glance_store, Ceph's bindings, WebOb or
prometheus_client, and ``openstack image progress`` on a laptop without
python-memcached, glance_store or Ceph's bindings. Every library a
module imports is declared by the package's core or by the extra of the
host the module runs on (setup.cfg); tests/functional/test_extras.py
installs each extra alone.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'glance_progress_store'
NAME = 'glance_progress_store'

# Which layer a module is in, by its path in the package.
LAYERS = {
    'records': 'contract', '_memcache': 'contract', 'options': 'contract',
    'store': 'upload', 'upload': 'upload',
    'read': 'read',
    'cmd': 'cmd', 'middleware': 'filter', 'osc': 'osc',
    'ops': 'ops', 'dashboard': 'dashboard',
}
# The layers each layer's modules may import from this package.
MAY_IMPORT = {
    'contract': {'contract'},
    'upload': {'contract', 'upload'},
    'read': {'contract', 'read'},
    'cmd': {'contract', 'read', 'cmd', 'ops'},
    'ops': {'contract', 'read', 'ops'},
    'filter': {'contract', 'read'},
    # only what draws and names things: never the memcached reader
    'osc': {'records', 'read.views', 'read.states', 'cmd.follow', 'osc'},
    # the Horizon plugin: words and numbers only; glance answers for it
    'dashboard': {'records', 'read.views', 'read.states', 'dashboard'},
}
# Third-party modules a layer must not import at module level (a lazy
# import inside the one function that needs it is how orphans reaches
# Ceph and the exporter prometheus_client).
SERVER_SIDE = {'glance_store', 'rados', 'rbd', 'webob', 'prometheus_client',
               'glance'}
CLIENT_SIDE = {'osc_lib', 'keystoneauth1', 'cliff'}
MUST_NOT_IMPORT = {
    'contract': SERVER_SIDE | CLIENT_SIDE,
    'read': SERVER_SIDE | CLIENT_SIDE | {'tqdm'},
    'cmd': SERVER_SIDE | CLIENT_SIDE,
    'ops': SERVER_SIDE | CLIENT_SIDE,
    'filter': (SERVER_SIDE - {'webob'}) | CLIENT_SIDE,
    'upload': {'webob', 'prometheus_client'} | CLIENT_SIDE,
    'osc': SERVER_SIDE | {'memcache', 'oslo_config'},
    'dashboard': SERVER_SIDE | {'memcache', 'oslo_config', 'osc_lib',
                                'cliff'},
}
# The exporter's own modules are where prometheus_client belongs.
ALLOWED = {'cmd/exporter/metrics.py': {'prometheus_client'},
           'cmd/exporter/server.py': {'prometheus_client'}}


def _modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == '__init__.py':
            continue
        yield relative, LAYERS[relative.parts[0].removesuffix('.py')]


def _own(name):
    """The layer key of an import of this package: 'read.views', ..."""
    return name[len(NAME) + 1:]


def _imports(tree, top_level_only):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            base = node.module
            if base == NAME:  # from glance_progress_store import records
                yield from ('%s.%s' % (base, a.name) for a in node.names)
            elif base.startswith(NAME + '.') and base.count('.') == 1:
                # from glance_progress_store.read import views
                yield from ('%s.%s' % (base, a.name) for a in node.names)
            else:
                yield base


def _layer_of_import(name):
    own = _own(name)
    top = own.split('.')[0]
    return own, LAYERS[top]


@pytest.mark.parametrize('relative, layer', list(_modules()),
                         ids=lambda v: str(v))
def test_layer_imports(relative, layer):
    tree = ast.parse((PACKAGE / relative).read_text())
    wrong = []
    for name in _imports(tree, top_level_only=False):
        if not name.startswith(NAME + '.'):
            continue
        own, other = _layer_of_import(name)
        allowed = MAY_IMPORT[layer]
        if other not in allowed and not any(
                own == a or own.startswith(a + '.') for a in allowed):
            wrong.append(own)
    assert not wrong, '%s (%s) imports %s' % (relative, layer, wrong)
    forbidden = MUST_NOT_IMPORT[layer] - ALLOWED.get(str(relative), set())
    top = {n.split('.')[0] for n in _imports(tree, top_level_only=True)}
    assert not top & forbidden, '%s (%s) imports %s at module level' % (
        relative, layer, sorted(top & forbidden))


def test_every_folder_is_a_known_layer():
    folders = {p.parent.relative_to(PACKAGE).parts[0]
               for p in PACKAGE.rglob('*.py') if p.parent != PACKAGE}
    assert folders <= set(LAYERS), folders - set(LAYERS)


# Run in a fresh interpreter where the named modules cannot be imported,
# as on a host where they are not installed.
_BLOCKER = '''
import sys
BLOCKED = set(sys.argv[1].split(','))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError('not installed here: ' + name,
                                      name=name)
sys.meta_path.insert(0, Blocker())
del sys.argv[1]
'''


def run_without(blocked, code, *argv):
    return subprocess.run(
        [sys.executable, '-c', _BLOCKER + code, ','.join(sorted(blocked)),
         *argv], capture_output=True, text=True, timeout=60)


READ_HOST_LACKS = {'glance_store', 'rados', 'rbd', 'webob',
                   'prometheus_client', 'glance'}
LAPTOP_LACKS = {'memcache', 'glance_store', 'rados', 'rbd', 'webob',
                'prometheus_client', 'glance'}


def test_the_blocker_blocks():
    done = run_without({'json'}, 'import json')
    assert 'not installed here: json' in done.stderr


@pytest.mark.parametrize('argv, code', [
    (['show', 'an-image'], 4),
    (['list'], 4),
    (['watch', 'an-image', '--timeout', '1'], 4),
    (['orphans', '--help'], 0),
    (['exporter', '--help'], 0),
    (['link-ceph-bindings', '--help'], 0),
])
def test_read_commands_run_on_a_host_without_glance_store_ceph_or_prometheus(
        argv, code):
    # 127.0.0.1:1 refuses: the command reads, and says so (exit 4)
    done = run_without(
        READ_HOST_LACKS,
        'from glance_progress_store.cmd import cli; '
        'sys.exit(cli.main(sys.argv[1:]))',
        *argv, *([] if '--help' in argv else ['--servers', '127.0.0.1:1']))
    assert done.returncode == code, done.stderr
    assert 'Traceback' not in done.stderr
    if code == 4:
        assert 'refused' in done.stderr + done.stdout


@pytest.mark.parametrize('argv, extra', [
    (['exporter', '--listen', '127.0.0.1:0'], 'exporter'),
    (['orphans', '--pool', 'images'], 'store'),
])
def test_a_command_whose_extra_is_missing_names_it(argv, extra):
    # an operator's host with the core alone: no traceback, the extra
    done = run_without(
        READ_HOST_LACKS,
        'from glance_progress_store.cmd import cli; '
        'sys.exit(cli.main(sys.argv[1:]))',
        *argv, '--servers', '127.0.0.1:1')
    assert done.returncode == 64, done.stderr
    assert 'Traceback' not in done.stderr
    assert "glance_progress_store[%s]" % extra in done.stderr, done.stderr


def test_the_read_side_imports_on_a_host_without_them():
    done = run_without(
        READ_HOST_LACKS,
        'import pkgutil, importlib, glance_progress_store.read as r\n'
        'for m in pkgutil.iter_modules(r.__path__):\n'
        '    importlib.import_module("glance_progress_store.read." + m.name)\n'
        'print("ok")')
    assert done.stdout.strip() == 'ok', done.stderr


def test_the_openstackclient_plugin_runs_on_a_laptop_without_memcached():
    done = run_without(
        LAPTOP_LACKS,
        'from glance_progress_store.osc import plugin, wait\n'
        'from glance_progress_store.osc.v1 import progress\n'
        'for command in (progress.ShowProgress, progress.ListProgress):\n'
        '    command(None, None).get_parser("openstack image progress")\n'
        'import io\n'
        'body = {"image_id": "i", "backend": None, "state": "stored",\n'
        '        "bytes": 5, "total": 5, "image_status": "active"}\n'
        'class Client:\n'
        '    def progress(self, image_id, backend):\n'
        '        return body\n'
        'out = io.StringIO()\n'
        'last, code = wait.until_final(Client(), "i", out)\n'
        'print(code, out.getvalue().split()[2])')
    assert done.stdout.split() == ['0', 'stored'], done.stderr


# -- each layer's libraries, and the extra that declares them (setup.cfg) --

# The extra a layer's host installs, beside the core (None: the core).
EXTRA_OF = {'contract': None, 'read': None, 'cmd': None, 'ops': None,
            'upload': 'store', 'filter': 'store', 'osc': 'osc',
            'dashboard': 'dashboard'}
# Modules that need another audience's extra, said where they run: the
# exporter (prometheus_client), orphans (Ceph, through glance_store's RBD
# driver: a glance-api node's), the sample config's generator (glance's
# RBD options).
EXTRA_OF_MODULE = {'cmd/exporter/metrics.py': 'exporter',
                   'cmd/exporter/server.py': 'exporter',
                   'ops/orphans.py': 'store', 'options.py': 'store'}
# Not on PyPI, or the host's own: Ceph's bindings come from the
# distribution; uwsgi exists only inside the uWSGI server that runs
# glance-api; glance brings oslo.messaging (the upload notifications
# import it only if present); Horizon brings Django, itself and requests.
NOT_DECLARED = {'rados', 'rbd', 'uwsgi', 'oslo_messaging', 'django',
                'openstack_dashboard', 'requests'}


def _declared():
    """{extra or None: {distribution, ...}} as setup.cfg declares them."""
    import configparser
    from packaging import requirements
    from packaging import utils
    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE.parent / 'setup.cfg')

    def names(text):
        return {utils.canonicalize_name(requirements.Requirement(r).name)
                for r in text.split()}
    declared = {None: names(cfg['options']['install_requires'])}
    for extra, text in cfg['options.extras_require'].items():
        declared[extra] = names(text)
    return declared


def _distribution(module):
    from importlib import metadata
    from packaging import utils
    found = metadata.packages_distributions().get(module)
    assert found, 'no installed distribution provides %s' % module
    return utils.canonicalize_name(found[0])


@pytest.mark.parametrize('relative, layer', list(_modules()),
                         ids=lambda v: str(v))
def test_every_library_a_module_imports_is_in_its_hosts_extra(
        relative, layer):
    """What a module imports (at the top or lazily) is declared by the
    core or by the extra of the host it runs on."""
    extra = EXTRA_OF_MODULE.get(str(relative), EXTRA_OF[layer])
    declared = _declared()
    allowed = declared[None] | declared.get(extra, set())
    tree = ast.parse((PACKAGE / relative).read_text())
    third_party = {name.split('.')[0]
                   for name in _imports(tree, top_level_only=False)
                   if not name.startswith(NAME)} - set(
        sys.stdlib_module_names) - NOT_DECLARED
    missing = {module: _distribution(module) for module in third_party
               if _distribution(module) not in allowed}
    assert not missing, '%s (%s, extra %s) imports %s' % (
        relative, layer, extra, missing)
