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

"""The command line itself: help, version, usage errors (no service)."""

import os
import subprocess
import sys

import pytest

from glance_progress_store.cmd import cli
from glance_progress_store.read import states
from tests.cli_helpers import run


@pytest.mark.parametrize('argv', [['show', '--help'], ['watch', '--help'],
                                  ['--help']])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    out = capsys.readouterr().out
    assert raised.value.code == 0
    assert 'exit codes' in out and '64  usage' in out
    assert '130 interrupted (Ctrl-C)' in out


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(['--version'])
    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith('glance-progress ')


@pytest.mark.parametrize('argv', [
    [], ['show'], ['watch', 'x', '--interval', '0'],
    ['watch', 'x', '--timeout', '-1'], ['frobnicate', 'x']])
def test_usage_errors_do_not_look_like_stalled(capsys, argv):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == states.EXIT_USAGE
    assert 'usage:' in capsys.readouterr().err


@pytest.mark.parametrize('argv', [
    ['orphans', '--ceph-timeout', '0'], ['orphans', '--stall-after', '-1'],
    ['orphans', 'extra']])
def test_orphans_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == states.EXIT_USAGE


def test_orphans_backend_needs_multi_store(capsys):
    code, out, err = run(capsys, 'orphans', '--backend', 'ceph1')
    assert code == states.EXIT_USAGE
    assert '--backend needs a multi-store configuration' in err


def test_orphans_help(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(['orphans', '--help'])
    out = capsys.readouterr().out
    assert raised.value.code == 0
    for text in ('1   orphans found', '4   Ceph or memcached unreachable',
                 '64  usage', 'stalled ', 'no record', '--pool NAME',
                 '--rbd-user USER', '--ceph-conf PATH',
                 '130 interrupted (Ctrl-C)'):
        assert text in out


@pytest.mark.parametrize('command', ['show', 'watch'])
def test_empty_image_id_is_a_usage_error(capsys, command):
    # '' would read the keys "_upload_status"...: nobody's record
    with pytest.raises(SystemExit) as raised:
        cli.main([command, 'x', ''])
    err = capsys.readouterr().err
    assert raised.value.code == states.EXIT_USAGE
    assert [line for line in err.splitlines() if 'error:' in line] == [
        'glance-progress %s: error: argument IMAGE_ID: must not be empty'
        % command]


def _one_line_error(done):
    assert done.returncode == states.EXIT_USAGE, done.stderr
    assert 'Traceback' not in done.stderr
    assert done.stderr.count('\n') == 1, done.stderr
    assert done.stderr.startswith('glance-progress: error: ')
    return done.stderr


def glance_progress(*argv, unprivileged=False):
    """Run as an operator does; as root, `unprivileged` drops the
    capabilities that let root read any file."""
    prefix = []
    if unprivileged and os.geteuid() == 0:
        prefix = ['setpriv', '--inh-caps=-all',
                  '--bounding-set=-dac_override,-dac_read_search']
    return subprocess.run(
        prefix + [sys.executable, '-m', 'glance_progress_store.cmd.cli'] +
        [str(a) for a in argv], capture_output=True, text=True, timeout=60)


def test_config_file_mistakes_are_one_line_errors(tmp_path):
    unreadable = tmp_path / 'glance-api.conf'
    unreadable.write_text('[glance_store]\n')
    unreadable.chmod(0)
    for path, text in ((tmp_path / 'missing.conf', 'missing.conf'),
                       (tmp_path, 'Is a directory'),
                       (unreadable, 'glance-api.conf')):
        for command in (['show', 'x'], ['watch', 'x'], ['orphans']):
            err = _one_line_error(glance_progress(
                *command, '--config-file', path, unprivileged=True))
            assert 'cannot read the configuration' in err and text in err


def test_config_dir_mistakes_are_one_line_errors(tmp_path):
    # oslo.config skips a directory that is not there: a typo would read
    # nothing, and show would look at 127.0.0.1:11211 instead
    (tmp_path / 'a-file').write_text('')
    for path in (tmp_path / 'missing.conf.d', tmp_path / 'a-file'):
        for command in (['show', 'x'], ['orphans']):
            err = _one_line_error(glance_progress(*command, '--config-dir',
                                                  path))
            assert '%s is not a directory' % path in err


def test_servers_memcached_cannot_parse_are_a_usage_error(capsys):
    # python-memcached takes no brackets: "[::1]:11211" is a ValueError
    code, out, err = run(capsys, 'show', 'x', '--servers', '[::1]:11211')
    assert code == states.EXIT_USAGE
    assert err.count('\n') == 1 and '[::1]:11211' in err
    assert err.startswith('glance-progress: error: ')
