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

"""The documentation, built: nothing the code has is missing from it.

doc/source is built once, from scratch, with warnings as errors (as
``tox -e docs`` does); then every option, metric family, ``glance-progress``
sub-command and option and ``openstack image progress`` command must be
in the built pages. README and the install guide are checked against the
files and commands they name.
"""

import configparser
import html
import re
import shlex
import subprocess
import sys

from importlib import metadata
import pytest

from glance_progress_store.cmd import cli
from glance_progress_store import options
from tests import docs

ROOT = docs.ROOT


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')
    proc = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '-E', '-b', 'html',
         '-d', str(out / 'doctrees'), str(docs.DOC), str(out / 'html')],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    # docutils' own messages (inside generated text) do not fail -W
    assert not re.search(r'\((WARNING|ERROR|SEVERE)/\d\)', proc.stderr), (
        proc.stderr)

    def page(name):
        return html.unescape((out / 'html' / name).read_text())
    return page


def _text(markup):
    return re.sub(r'<[^>]+>', '', markup)


def test_every_option_is_in_the_configuration_reference(built):
    page = built('configuration/index.html')
    names = [(group, opt.name) for group, opts in options.list_opts()
             for opt in opts]
    assert len(names) > 15
    for group, name in names:
        assert 'id="%s.%s"' % (group, name) in page, (group, name)
    for opt in options.OPTIONS + options.FILTER_OPTS:
        # the help is the one source: its first line is on the page
        assert opt.help.strip().splitlines()[0] in _text(page), opt.name


def test_every_metric_family_is_in_the_admin_guide(built):
    from prometheus_client import core as prom_core  # noqa: F401
    sys.path.insert(0, str(docs.DOC / '_extensions'))
    try:
        import exporter_metrics
    finally:
        sys.path.pop(0)
    page = built('admin/exporter.html')
    rows = exporter_metrics.rows()
    assert len(rows) == 12
    for name, kind, labels, help_text in rows:
        assert 'id="metric-%s"' % name.replace('_', '-') in page, name
        assert help_text in _text(page), name


def _subcommands(parser):
    import argparse
    action = next(a for a in parser._actions
                  if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_glance_progress_subcommand_and_option(built):
    page = built('cli/glance-progress.html')
    for name, sub in _subcommands(cli.build_parser()).items():
        start = page.index('id="glance-progress-%s"' % name)
        section = _text(page[start:])
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ('-h', '--help'):  # not shown
                    assert option in section, (name, option)


def test_every_openstack_command(built):
    page = built('cli/openstack.html')
    commands = metadata.entry_points(group='openstack.image_progress.v1')
    assert len(commands) == 2
    for entry in commands:
        words = entry.name.replace('_', ' ')
        assert 'id="%s"' % words.replace(' ', '-') in page, words
        parser = entry.load()(None, None).get_parser('openstack ' + words)
        for group in parser._action_groups:
            if 'formatter' in (group.title or '').lower():
                continue  # cliff's own, left out as in osc-placement
            for action in group._group_actions:
                for option in action.option_strings:
                    if option not in ('-h', '--help'):
                        assert option in _text(page), (words, option)


def test_pages_operators_look_for(built):
    for page, needles in {
            'admin/upgrade.html': ['progress_rbd', 'unknown', '404'],
            'admin/uninstall.html': ['upload_progress', '30 days',
                                     'progress_index_ttl', 'progress_ttl'],
            'admin/troubleshooting.html': ['stalled', 'memcached_up',
                                           'bad', 'Horizon'],
            'admin/security.html': ['no authentication', 'forge'],
            'reference/contract.html': ['flags 0', '"v": 2'],
    }.items():
        text = _text(built(page)).replace('\n', ' ')
        for needle in needles:
            assert needle in text, (page, needle)


# -- the sources: README and the install guide --------------------------------

def test_readme_is_short_and_its_ini_blocks_are_the_etc_files():
    assert len(docs.README.read_text().splitlines()) <= 150
    blocks = docs.readme_ini_blocks()
    files = [ROOT / 'etc' / 'glance-api.conf.single-store',
             ROOT / 'etc' / 'glance-api.conf.multi-store']
    assert blocks == [docs.without_leading_comments(f.read_text())
                      for f in files]


def test_readme_paths_and_commands_exist():
    text = docs.README.read_text()
    for path in re.findall(r'`((?:doc|api-ref|releasenotes|etc|tools)/'
                           r'[\w./-]*)`', text):
        assert (ROOT / path).exists(), path
    for tool in ('tools/demo', 'tools/run-tests', 'tools/setup-env',
                 '.ci/run'):
        assert (ROOT / tool).stat().st_mode & 0o100, tool
    tox = configparser.ConfigParser()
    tox.read(ROOT / 'tox.ini')
    for env in re.findall(r'tox -e ([\w-]+)', text):
        assert tox.has_section('testenv:' + env), env
    assert 'tox' in (ROOT / 'test-requirements.txt').read_text()


def test_install_guide_lists_every_dependency():
    guide = docs.INSTALL.read_text()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    for requirement in cfg['options']['install_requires'].split():
        name = re.match(r'[A-Za-z0-9_.-]+', requirement).group()
        assert '``%s``' % name in guide, name


def test_install_guide_commands():
    """Every named block's commands are real: the glance-progress
    command lines parse, the wheel is the one this version builds, no
    Debian-12-missing ``python3 -m pip``."""
    blocks = docs.code_blocks(docs.INSTALL)
    assert set(blocks) == {'install-packages', 'install-venv',
                           'install-wheel', 'install-bindings',
                           'install-check', 'install-operator',
                           'install-laptop'}
    version = metadata.version('glance_progress_store')
    assert ('glance_progress_store-%s-py3-none-any.whl' % version
            in blocks['install-wheel'])
    parser = cli.build_parser()
    for name, text in blocks.items():
        assert 'python3 -m pip' not in text and 'sudo' not in text, name
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].endswith('/bin/glance-progress"') or (
                    words and words[0].endswith('/bin/glance-progress')):
                parser.parse_args(words[1:])


def test_literalincludes_exist():
    for path in docs.DOC.rglob('*.rst'):
        for target in re.findall(r'^\.\. literalinclude:: (\S+)',
                                 path.read_text(), re.M):
            assert (path.parent / target).resolve().is_file(), (path, target)
