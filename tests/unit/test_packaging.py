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

"""The sdist and the wheel, as built from a copy of the tree.

``python -m build --no-isolation`` builds the sdist, then the wheel from
the sdist (so the sdist is complete enough to build), with the test
venv's setuptools: no daemons, no root, no network.
"""

import configparser
import email.parser
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import zipfile

from packaging import requirements
from packaging import utils
from packaging import version
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAME = 'glance_progress_store-0.1.0'
IGNORE = shutil.ignore_patterns('.git', '.venv*', '.tox', 'build', 'dist',
                                '*.egg-info', '__pycache__', '.pytest_cache')
ENTRY_POINTS = {
    'glance_store.drivers': {
        'progress_rbd': 'glance_progress_store.store:Store'},
    'oslo.config.opts': {
        'glance_progress_store': 'glance_progress_store.options:list_opts'},
    'console_scripts': {
        'glance-progress': 'glance_progress_store.cmd.cli:main'},
    # the OpenStackClient plugin: `openstack image progress show|list`
    'openstack.cli.extension': {
        'image_progress': 'glance_progress_store.osc.plugin'},
    'openstack.image_progress.v1': {
        'image_progress_show':
            'glance_progress_store.osc.v1.progress:ShowProgress',
        'image_progress_list':
            'glance_progress_store.osc.v1.progress:ListProgress'},
}


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """(sdist members {name: bytes}, wheel members {name: bytes})."""
    tmp = tmp_path_factory.mktemp('packaging')
    src = tmp / 'src'
    shutil.copytree(ROOT, src, ignore=IGNORE)
    dist = tmp / 'dist'
    proc = subprocess.run(
        [sys.executable, '-m', 'build', '--no-isolation', '--outdir', dist,
         src], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(dist)) == [
        NAME + '-py3-none-any.whl', NAME + '.tar.gz']
    with tarfile.open(dist / (NAME + '.tar.gz')) as tar:
        sdist = {m.name[len(NAME) + 1:]: tar.extractfile(m).read()
                 for m in tar.getmembers() if m.isfile()}
    with zipfile.ZipFile(dist / (NAME + '-py3-none-any.whl')) as whl:
        wheel = {name: whl.read(name) for name in whl.namelist()}
    return sdist, wheel


def _dist_info(wheel, name):
    return wheel['%s.dist-info/%s' % (NAME, name)].decode()


def _requirements(texts):
    parsed = [requirements.Requirement(text) for text in texts]
    return sorted((utils.canonicalize_name(r.name), str(r.specifier))
                  for r in parsed)


def _extras_declared():
    """{extra: [requirement, ...]} as setup.cfg declares them."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    section = cfg['options.extras_require']
    return {extra: section[extra].split() for extra in section}


def _metadata(text):
    return email.parser.Parser().parsestr(text)


def test_long_description_is_the_readme(built):
    sdist, wheel = built
    readme = (ROOT / 'README.md').read_text()
    for text in (_dist_info(wheel, 'METADATA'), sdist['PKG-INFO'].decode()):
        meta = _metadata(text)
        assert meta['Description-Content-Type'] == 'text/markdown'
        assert meta.get_payload().strip() == readme.strip()


def test_metadata(built):
    _, wheel = built
    meta = _metadata(_dist_info(wheel, 'METADATA'))
    assert meta.get_all('Requires-Python') == ['>=3.10']
    assert meta['License'] == 'Apache-2.0'
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    wanted = cfg['options']['install_requires'].split()
    declared = [requirements.Requirement(text)
                for text in meta.get_all('Requires-Dist')]
    core = [str(r) for r in declared if r.marker is None]
    assert _requirements(core) == _requirements(wanted)


# The extras are a contract: the install guide's commands name them.
EXTRAS = {'store', 'exporter', 'osc', 'dashboard'}


def test_each_audience_has_its_extra(built):
    _, wheel = built
    meta = _metadata(_dist_info(wheel, 'METADATA'))
    assert set(meta.get_all('Provides-Extra')) == EXTRAS
    declared = [requirements.Requirement(text)
                for text in meta.get_all('Requires-Dist')]
    for extra, wanted in _extras_declared().items():
        found = [r for r in declared if r.marker is not None
                 and r.marker.evaluate({'extra': extra})]
        assert _requirements(str(r).split(';')[0] for r in found) == (
            _requirements(wanted)), extra


def test_the_core_is_only_what_the_read_commands_need():
    """glance_store, WebOb, prometheus_client and the OpenStackClient
    libraries are each in an extra, never in every host's core."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    core = {name for name, _ in _requirements(
        cfg['options']['install_requires'].split())}
    assert core == {'python-memcached', 'oslo-config', 'tqdm'}
    where = {utils.canonicalize_name(requirements.Requirement(r).name): e
             for e, texts in _extras_declared().items() if e != 'dashboard'
             for r in texts if not r.startswith('keystoneauth1')}
    assert where['glance-store'] == where['webob'] == 'store'
    assert where['prometheus-client'] == 'exporter'
    assert where['osc-lib'] == where['cliff'] == 'osc'


def test_the_install_guide_names_every_extra_and_its_requirements():
    guide = (ROOT / 'doc' / 'source' / 'install' / 'index.rst').read_text()
    for extra, texts in _extras_declared().items():
        assert '[%s]' % extra in guide, extra
        for text in texts:
            name = requirements.Requirement(text).name
            assert '``%s``' % name in guide, (extra, name)


def test_python_requires_once_and_no_pbr_keys():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    assert [s for s in cfg.sections()
            if cfg.has_option(s, 'python_requires')] == ['options']
    # pbr's key: setuptools ignores it and the description is empty.
    assert not cfg.has_option('metadata', 'description_file')


def test_license(built):
    sdist, wheel = built
    text = (ROOT / 'LICENSE').read_text()
    assert text.split()[:4] == ['Apache', 'License', 'Version', '2.0,']
    assert 'END OF TERMS AND CONDITIONS' in text  # the full text
    assert sdist['LICENSE'].decode() == text
    licenses = [name for name in wheel if name.startswith(NAME + '.dist-info')
                and name.endswith('/LICENSE')]
    assert len(licenses) == 1, sorted(wheel)
    assert wheel[licenses[0]].decode() == text


def test_sdist_has_etc_and_readme(built):
    sdist, _ = built
    etc = sorted(str(path.relative_to(ROOT))
                 for path in (ROOT / 'etc').rglob('*') if path.is_file())
    assert 'etc/glance-api.conf.snippet' in etc
    for name in etc + ['README.md', 'pyproject.toml']:
        assert sdist.get(name) == (ROOT / name).read_bytes(), name
    assert 'setup.cfg' in sdist  # rewritten by egg_info: not compared


def test_the_wheel_carries_every_module_and_the_live_page(built):
    _, wheel = built
    package = ROOT / 'glance_progress_store'
    for path in list(package.rglob('*.py')) + [
            package / 'cmd' / 'exporter' / 'page.html']:
        name = str(path.relative_to(ROOT))
        assert wheel.get(name) == path.read_bytes(), name


def test_both_carry_the_horizon_plugins_static_files(built):
    sdist, wheel = built
    static = ROOT / 'glance_progress_store' / 'dashboard' / 'static'
    files = [path for path in static.rglob('*') if path.is_file()]
    assert {path.suffix for path in files} == {'.js', '.html', '.scss'}
    for path in files:
        name = str(path.relative_to(ROOT))
        assert wheel.get(name) == path.read_bytes(), name
        assert sdist.get(name) == path.read_bytes(), name


def test_entry_points(built):
    _, wheel = built
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read_string(_dist_info(wheel, 'entry_points.txt'))
    found = {section: dict(parser[section]) for section in parser.sections()}
    assert found == ENTRY_POINTS


def _pins(path):
    """{name: Requirement} of a requirements or constraints file, the
    lines for this Python only."""
    found = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split('#')[0].strip()
        if line and not line.startswith('-'):
            requirement = requirements.Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                found[utils.canonicalize_name(requirement.name)] = requirement
    return found


def test_the_oldest_releases_tested_are_the_floors():
    """tools/glance-oldest runs the oldest glance and glance_store that
    demo-requirements.txt and the store extra allow, and nothing older
    is allowed."""
    oldest = _pins('tools/glance-oldest-requirements.txt')
    floors = {
        'glance': _pins('demo-requirements.txt')['glance'].specifier,
        'glance-store': [requirements.Requirement(text).specifier
                         for text in _extras_declared()['store']
                         if text.startswith('glance_store')][0],
    }
    assert set(oldest) == set(floors)
    for name, allowed in floors.items():
        (pin,) = oldest[name].specifier
        tested = version.Version(pin.version)
        assert pin.operator == '==' and tested in allowed, name
        below = [spec for spec in allowed if spec.operator == '>=']
        assert [version.Version(spec.version) for spec in below] == [
            tested], name
