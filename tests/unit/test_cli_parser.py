"""The command line itself: help, version, usage errors (no service)."""

import pytest

from glance_progress_store import cli
from glance_progress_store import states
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
