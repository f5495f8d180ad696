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

"""glance-progress watch against the session's real memcached."""

import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import memcache

from glance_progress_store.cmd import watch
from glance_progress_store.read import sources
from glance_progress_store.read import states
from glance_progress_store import records
from tests.cli_helpers import MiB
from tests.cli_helpers import MULTI
from tests.cli_helpers import publish
from tests.cli_helpers import publish_multi
from tests.cli_helpers import record
from tests.cli_helpers import run
from tests.cli_helpers import write_conf
from tests import helpers
from tests.helpers import parse_lines

import testbed  # on sys.path through conftest


def later(delay, function, *args, **kwargs):
    timer = threading.Timer(delay, function, args, kwargs)
    timer.start()
    return timer


class Shown:
    """sys.stdout of an in-process watch, teed: another thread (the
    test's "upload") waits for a line before it changes the record, so
    that the watch sees each state however busy the machine is."""

    def __init__(self, out):
        self.out = out
        self.text = ''

    def write(self, text):
        self.text += text
        return self.out.write(text)

    def flush(self):
        self.out.flush()

    def isatty(self):
        return False

    def wait_line(self, what, predicate, timeout=30):
        return helpers.wait_for('the watch to show ' + what, lambda: any(
            predicate(line) for line in parse_lines(self.text)), timeout,
            interval=0.01, on_timeout=lambda: ': %r' % self.text)


def tee_stdout(monkeypatch):
    """Shown on sys.stdout (capsys' while the test runs: pytest sets it
    again after the fixtures, so this is called by the test itself)."""
    tee = Shown(sys.stdout)
    monkeypatch.setattr(sys, 'stdout', tee)
    return tee


class Upload(threading.Thread):
    """The test's side of a watch: ``steps()`` in a thread; its error,
    if any, is raised by ``check()``."""

    def __init__(self, steps):
        super().__init__(daemon=True)
        self.steps = steps
        self.error = None
        self.start()

    def run(self):
        try:
            self.steps()
        except BaseException as e:
            self.error = e

    def check(self):
        self.join(60)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def test_watch_until_stored(capsys, monkeypatch, addr, image):
    shown = tee_stdout(monkeypatch)
    # the operator starts watching before the upload starts
    started = time.time()

    def upload():
        shown.wait_line('waiting', lambda line: line[2] == 'waiting')
        for nbytes in (0, MiB, 3 * MiB):
            publish(addr, image, records.ProgressRecord(
                'uploading', nbytes, 4 * MiB, None, started, time.time()),
                final=False)
            shown.wait_line('%d bytes' % nbytes, lambda line: line[3] == (
                '%d/%d' % (nbytes, 4 * MiB)))
        publish(addr, image, records.ProgressRecord(
            'stored', 4 * MiB, 4 * MiB, None, started, time.time()))

    steps = Upload(upload)
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 60)
    steps.check()
    assert code == 0
    lines = parse_lines(out)
    assert lines[0] == [image, '-', 'waiting', '-', '-', '-', '-']
    assert [line[2:4] for line in lines[1:]] == [
        ['uploading', '0/4194304'], ['uploading', '1048576/4194304'],
        ['uploading', '3145728/4194304'], ['stored', '4194304/4194304']]
    assert lines[-1][4] == '100.0%' and lines[-1][5].endswith('B/s')


def test_watch_failed(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB), final=False)
    timer = later(0.3, publish, addr, image, record(
        state='failed', nbytes=2 * MiB, total=4 * MiB, reason='ceph_error'))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 30)
    timer.join()
    assert code == states.EXIT_FAILED
    assert parse_lines(out)[-1][2:4] == ['failed', '2097152/4194304']
    assert out.splitlines()[-1].endswith(' ceph_error')


def test_watch_stalled(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB,
                                started_ago=7200, updated_ago=3600))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--timeout', 30)
    assert code == states.EXIT_STALLED
    assert parse_lines(out) == [[image, '-', 'stalled', '1048576/4194304',
                                 '25.0%', '291B/s', '-']]


def test_watch_becomes_stalled_when_updates_stop(capsys, monkeypatch, addr,
                                                 image):
    shown = tee_stdout(monkeypatch)
    # the record is kept fresh until the watch showed it uploading
    started = time.time()

    def upload():
        while True:
            publish(addr, image, records.ProgressRecord(
                'uploading', MiB, 4 * MiB, None, started, time.time()),
                final=False)
            try:
                return shown.wait_line('uploading', lambda line: (
                    line[2] == 'uploading'), timeout=0.2)
            except RuntimeError:
                continue  # not seen while fresh: a fresher one

    steps = Upload(upload)
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.1, '--stall-after', 0.5,
                       '--timeout', 60)
    steps.check()
    assert code == states.EXIT_STALLED
    seen = [line[2] for line in parse_lines(out)]
    assert seen[-1] == 'stalled' and len(seen) >= 2, seen
    assert set(seen[:-1]) <= {'waiting', 'uploading'}, seen
    assert 'uploading' in seen[:-1], seen


def test_watch_unknown_after_wait_start(capsys, addr, image):
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--wait-start', 0.3)
    assert code == states.EXIT_UNKNOWN
    assert time.monotonic() - begin >= 0.3
    assert [line[2] for line in parse_lines(out)] == ['waiting', 'unknown']


def test_watch_timeout(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB))
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 0.3)
    assert code == states.EXIT_TIMEOUT
    assert 0.3 <= time.monotonic() - begin < 5
    assert out.splitlines()[-1] == '# timed out after 0s'


def test_watch_several_images_waits_for_all(capsys, addr, image):
    other = str(uuid.uuid4())
    publish(addr, image, record(state='stored', nbytes=1, total=1))
    publish(addr, other, record(nbytes=1, total=2), final=False)
    timer = later(0.3, publish, addr, other,
                  record(state='stored', nbytes=2, total=2))
    code, out, _ = run(capsys, 'watch', image, other, '--servers', addr,
                       '--interval', 0.05, '--timeout', 30)
    timer.join()
    assert code == 0
    last = {line[0]: line[2] for line in parse_lines(out)}
    assert last == {image: 'stored', other: 'stored'}


def test_watch_multi_store_one_line_per_backend(capsys, addr, image,
                                                tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI.format(
        dead=addr, addr=addr, addr2=addr))
    publish_multi(addr, image, record(state='stored', nbytes=5, total=5,
                                      backend='ceph1'))
    publish_multi(addr, image, record(state='failed', nbytes=1, total=5,
                                      backend='ceph2', reason='x'),
                  prefix='two:')
    code, out, _ = run(capsys, 'watch', image, '--config-file', conf,
                       '--timeout', 30)
    assert code == states.EXIT_FAILED
    assert sorted((line[1], line[2]) for line in parse_lines(out)) == [
        ('ceph1', 'stored'), ('ceph2', 'failed')]


def test_watch_pickled_value_is_bad(capsys, addr, image, tmp_path):
    tripwire = helpers.Tripwire(tmp_path / 'pwned')
    memcache.Client([addr]).set(records.keys_for(image).status, tripwire)
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--timeout', 30)
    assert code == states.EXIT_UNKNOWN
    line = parse_lines(out)[0]
    assert line[2] == 'bad' and 'pickled' in line[7]
    assert not tripwire.path.exists()


def test_watch_memcached_unreachable(capsys, image):
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers',
                       '127.0.0.1:%d' % testbed.free_port(), '--timeout', 30)
    assert code == states.EXIT_UNREACHABLE
    assert time.monotonic() - begin < 10  # wrong servers: no waiting
    line = parse_lines(out)[0]
    assert line[2] == 'unreachable' and 'refused the connection' in line[7]


def test_watch_survives_a_memcached_restart(capsys, monkeypatch,
                                            live_memcached, image):
    shown = tee_stdout(monkeypatch)
    addr = live_memcached.address
    publish(addr, image, record(nbytes=1, total=2), final=False)

    def restart_then_store():
        shown.wait_line('uploading', lambda line: line[2] == 'uploading')
        live_memcached.stop()
        shown.wait_line('unreachable', lambda line: (
            line[2] == 'unreachable'))
        live_memcached.start()
        publish(addr, image, record(state='stored', nbytes=2, total=2))

    steps = Upload(restart_then_store)
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 60)
    steps.check()
    assert code == 0
    states = [line[2] for line in parse_lines(out)]
    assert states[0] == 'uploading' and states[-1] == 'stored'
    assert 'unreachable' in states


def watch_on(columns, addr, image):
    publish(addr, image, record(state='stored', nbytes=3 * MiB,
                                total=4 * MiB))
    settings = sources.read_settings(servers=addr)
    with helpers.Terminal(columns) as terminal:
        assert watch.Watch(settings, [image], terminal.file).run() == 0
        return terminal.text()


def test_watch_on_a_terminal_draws_bars(addr, image):
    text = watch_on(120, addr, image)
    # a 30 character bar, 75% full
    assert re.search(r'%s \|█{22}\S? *\| ' % image, text), text
    assert 'stored  3.0 MiB / 4.0 MiB (75.0%)' in text


def test_watch_on_a_terminal_of_unknown_width_prints_lines(addr, image):
    # tqdm draws nothing in 0 columns (a pty without a window size)
    text = watch_on(0, addr, image)
    assert '%s - stored 3145728/4194304 75.0%%' % image in text, text


def test_ctrl_c_exits_130_without_a_traceback(addr, image):
    """An operator's Ctrl-C: SIGINT to a watch that would wait a while."""
    publish(addr, image, record(nbytes=1, total=2), final=False)
    # A terminal's Ctrl-C reaches a watch whose SIGINT is not ignored; a
    # suite started in the background (`tools/run-tests &`, nohup) ignores
    # it and the watch would inherit that: it is given the default back.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watching = subprocess.Popen(
            [sys.executable, '-m', 'glance_progress_store.cmd.cli', 'watch',
             image, '--servers', addr, '--interval', '0.05'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    lines = queue.Queue()
    reading = threading.Thread(target=lambda: [
        lines.put(line) for line in iter(watching.stdout.readline, '')],
        daemon=True)
    reading.start()
    try:
        # SIGINT once the watch is in its loop: it has shown the upload
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            first = None
        assert first is not None and first.split()[2] == 'uploading', (
            first, watching.poll(), watching.poll() is not None and
            watching.stderr.read())
        watching.send_signal(signal.SIGINT)
        watching.wait(timeout=120)
        err = watching.stderr.read()
    finally:
        watching.kill()
        reading.join(10)
    assert watching.returncode == states.EXIT_INTERRUPTED == 130
    assert 'Traceback' not in err, err
