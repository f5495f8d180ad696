#!/usr/bin/env python3
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

"""The main job: an upload through glance-api into Ceph, with live progress.

Boots the local stack (a one-node Ceph, memcached, glance-api under uWSGI
configured with ``stores = progress_rbd``: the same code the end-to-end
tests use, with the upload_progress filter), generates an image, uploads
it with python-glanceclient while the operator's ``glance-progress watch``
(memcached) and the user's ``openstack image progress show --wait``
(glance's API) follow it, then prints the image's checksum, its RBD
location and the final progress record. With ``--keep`` it also starts
``glance-progress exporter`` (Prometheus metrics and the live page). Run
it through ``tools/demo``, which installs what it needs first.
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
from testbed import cli as testbed_cli  # noqa: E402

MiB = testbed.sizes.MiB


def make_image(path, size):
    """A raw disk image of `size` bytes; returns its md5 and sha512."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    block = os.urandom(16 * MiB)
    with open(path, 'wb') as f:
        left = size
        while left:
            piece = block[:min(left, len(block))]
            f.write(piece)
            md5.update(piece)
            sha512.update(piece)
            left -= len(piece)
    return md5.hexdigest(), sha512.hexdigest()


def venv_bin(name):
    """A command of the venv the demo runs in (not on PATH), absolute."""
    return os.path.join(os.path.dirname(os.path.abspath(sys.executable)),
                        name)


def glance_progress(*args):
    return [venv_bin('glance-progress'), *args]


def command_line(words):
    """``words`` as one line to paste into a shell."""
    return ' '.join(shlex.quote(str(w)) for w in words)


def run(args):
    workdir = os.path.abspath(
        args.workdir or tempfile.mkdtemp(prefix='glance-progress-demo-'))
    testbed_cli.refuse_if_running(workdir)
    size = testbed.parse_size(args.size)
    local = testbed.LocalStack(workdir, memstore_bytes=size * 2 + 4096 * MiB,
                               glance={'progress_filter': True})
    try:
        print('starting Ceph, memcached and glance-api on loopback '
              '(usually 5-30 s) ...', flush=True)
        started = time.monotonic()
        with local:
            ok, image_id = _demo(args, local, size, started)
            if args.keep:
                local.add_exporter()
                dashboard = None
                if args.horizon:
                    print('starting Keystone, a glance-api with Keystone '
                          'and Horizon with the progress plugin ...',
                          flush=True)
                    dashboard = testbed.horizon.start_for_stack(
                        local, out=sys.stdout)
                local.keep()
                if dashboard is not None:
                    testbed.horizon.record_in_state(
                        local.workdir, dashboard[0], dashboard[2])
                    _print_horizon(*dashboard)
                _print_keep(local, image_id)
        if not args.keep:
            _print_stopped()
        return 0 if ok else 1
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _demo(args, local, size, started):
    """Upload, watch and check; True if everything matched."""
    api, ceph, memcached = local.api, local.ceph, local.memcached
    print('local stack up in %.0f s: Ceph %s, memcached %s, glance-api '
          '%s (stores = progress_rbd)' % (
              time.monotonic() - started, ceph.mon_addr,
              memcached.address, api.url))

    path = os.path.join(local.workdir, 'demo.raw')
    print('generating a %s image ...' % args.size, flush=True)
    md5, sha512 = make_image(path, size)

    client = api.client()
    image = client.images.create(name='progress-demo', disk_format='raw',
                                 container_format='bare')
    print('uploading image %s with python-glanceclient, followed by\n'
          '  operator: glance-progress watch (memcached, by image id)\n'
          '  user:     openstack image progress show --wait (glance\'s '
          'API, with glance\'s authorization)\n' % image['id'])
    upload = _Upload(client, image['id'], path, size)
    followers = [
        _Follower('operator', glance_progress(
            'watch', image['id'], '--servers', memcached.address,
            '--interval', '0.25')),
        _Follower('user', openstack(api) + [
            'image', 'progress', 'show', image['id'], '--wait',
            '--interval', '0.25', '-f', 'value', '-c', 'state',
            '-c', 'image_status']),
    ]
    for follower in followers:
        follower.start()
    # both are following (the image is queued) before the upload starts
    for follower in followers:
        follower.first_line.wait(30)
    upload.start()
    upload.join()
    for follower in followers:
        follower.join()
    if upload.error is not None:
        raise upload.error

    image = client.images.get(image['id'])
    show = subprocess.run(glance_progress('show', image['id'], '--json',
                                          '--servers', memcached.address),
                          stdout=subprocess.PIPE, text=True)
    record = json.loads(show.stdout) if show.returncode == 0 else {}
    print('\nimage %s is %s: %d bytes' % (image['id'], image['status'],
                                          image['size']))
    print(_rates(image['size'], upload.seconds, record))
    print('  checksum (md5):  %s %s' % (
        image['checksum'], 'OK' if image['checksum'] == md5 else
        'MISMATCH, expected %s' % md5))
    print('  os_hash_value:   %s... (%s) %s' % (
        image['os_hash_value'][:32], image['os_hash_algo'],
        'OK' if image['os_hash_value'] == sha512 else 'MISMATCH'))
    print('  RBD location:    %s' % image['direct_url'])
    print('  in Ceph:         %s' % ceph.rbd(
        'info', '%s/%s' % (testbed.DEFAULT_POOL, image['id'])
    ).splitlines()[1].strip())
    print('\nfinal progress record (glance-progress show --json):')
    print(show.stdout.rstrip())
    return (all(f.returncode == 0 for f in followers) and
            show.returncode == 0 and
            image['status'] == 'active' and image['checksum'] == md5 and
            image['os_hash_value'] == sha512), image['id']


def _rates(size, seconds, record):
    """The two rates of the demo, in the same units, each saying what it
    measures: they differ by what each clock includes."""
    lines = ['  through glance-api: %.0f MiB/s (%.0f B/s): %.2f s by the '
             'client\'s clock,\n'
             '                      from the start of its PUT to glance\'s '
             'answer'
             % (size / MiB / seconds, size / seconds, seconds)]
    rate = record.get('rate_bytes_per_s')
    if rate:
        store_seconds = record['updated_at'] - record['started_at']
        lines.append(
            '  in the store:       %.0f MiB/s (%.0f B/s): the watch lines\' '
            'rate, %.2f s\n'
            '                      from the store\'s add() to its last '
            'record; glance\'s\n'
            '                      own work before and after the store is '
            'not in it'
            % (rate / MiB, rate, store_seconds))
    return '\n'.join(lines)


def openstack(api):
    """The openstack CLI pointed at the demo's glance-api, which takes
    any token (the test bed's identity) as a cloud without Keystone
    would.  admin_token with the test bed's token rather than auth type
    none, which fails on the OS_AUTH_TOKEN the glance CLI's export line
    sets ("unexpected keyword argument 'token'")."""
    return [venv_bin('openstack'), '--os-auth-type', 'admin_token',
            '--os-token', api.cli_env()['OS_AUTH_TOKEN'],
            '--os-endpoint', api.url]


class _Follower(threading.Thread):
    """A command that follows the upload; its lines printed as they come,
    after who is looking."""

    def __init__(self, who, command):
        super().__init__(daemon=True)
        self.who, self.command = who, command
        self.returncode = None
        self.first_line = threading.Event()

    def run(self):
        proc = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sys.stdout.write('%-8s | %s' % (self.who, line))
            sys.stdout.flush()
            self.first_line.set()
        self.returncode = proc.wait()
        self.first_line.set()


class _Upload(threading.Thread):
    def __init__(self, client, image_id, path, size):
        super().__init__(daemon=True)
        self.client, self.image_id = client, image_id
        self.path, self.size = path, size
        self.error = None
        self.seconds = None

    def run(self):
        started = time.monotonic()
        try:
            with open(self.path, 'rb') as f:
                self.client.images.upload(self.image_id, f,
                                          image_size=self.size)
        except Exception as e:
            self.error = e
        self.seconds = time.monotonic() - started


def _on_path():
    """How to run the venv's commands, which are not on PATH."""
    return ('glance-progress (and glance, openstack) are in this '
            'checkout\'s venv, not on\n'
            'PATH: run them by their paths, e.g.\n'
            '  %s\n'
            'or put the venv on PATH in this shell first:\n'
            '  . %s\n' % (command_line(glance_progress('--help')),
                          shlex.quote(venv_bin('activate'))))


def _print_stopped():
    print('\n%s'
          'The stack is stopped; to try them on one left running (it '
          'prints how):\n'
          '  %s --keep' % (_on_path(),
                           shlex.quote(os.path.join(HERE, 'demo'))))


def _print_keep(local, image_id):
    """How to use the stack left running, what it costs, how to stop it
    and clean up: absolute paths, so that every line works pasted in any
    directory."""
    api, ceph = local.api, local.ceph
    memstore, rss = local.held_bytes()
    try:
        stored = json.loads(ceph.rbd(
            'du', '-p', testbed.DEFAULT_POOL, '--format', 'json'))[
                'total_used_size']
        stored = testbed.sizes.approx(stored)
    except (RuntimeError, ValueError, KeyError):
        stored = 'unknown'
    conf = ['--config-file', api.conf_path]
    env = ' '.join('%s=%s' % (k, shlex.quote(v))
                   for k, v in sorted(api.cli_env().items()))
    rbd = shutil.which('rbd') or 'rbd'
    print('\nThe stack is still running (--keep). It holds:\n'
          '  RAM:  up to %s for the OSD\'s memstore (Ceph keeps the data '
          'in RAM);\n'
          '        ceph-osd uses %s now, images stored: %s\n'
          '  disk: %s in %s (the generated image, logs, glance\'s '
          'database)' % (
              testbed.sizes.approx(memstore), testbed.sizes.approx(rss),
              stored, testbed.sizes.approx(_du(local.workdir)),
              local.workdir))
    print('\n' + _on_path())
    print('With --config-file %s\n'
          '(the file this glance-api runs with) every sub-command finds '
          'memcached (and\n'
          'orphans, Ceph) without --servers:\n'
          '  %s  # in flight, and the last hour\'s (the demo\'s)\n'
          '  %s\n'
          '  %s  # partial uploads left in Ceph' % (
              shlex.quote(api.conf_path),
              command_line(glance_progress('list', '--since', '1h', *conf)),
              command_line(glance_progress('watch', image_id, *conf)),
              command_line(glance_progress('orphans', *conf))))
    print('\nUpload again with the glance CLI, and follow it from another '
          'shell with\n'
          'the lines above:\n'
          '  export %s\n'
          '  %s\n'
          'The user\'s view (glance\'s API), and Ceph\'s:\n'
          '  %s\n  %s\n' % (
              env,
              command_line([venv_bin('glance'), 'image-create', '--name',
                            'again', '--disk-format', 'raw',
                            '--container-format', 'bare', '--file',
                            os.path.join(local.workdir, 'demo.raw'),
                            '--progress']),
              command_line(openstack(api) + ['image', 'progress', 'show',
                                             image_id]),
              command_line([rbd, '-c', ceph.conf_path, 'ls',
                            testbed.DEFAULT_POOL])))
    print('The exporter: %smetrics for Prometheus, the live page at %s\n'
          'Stop it with:\n'
          '  %s\n'
          'then remove its work directory:\n'
          '  rm -rf %s' % (
              local.exporter[1], local.exporter[1],
              command_line([os.path.abspath(sys.executable),
                            os.path.join(HERE, 'glance_stack.py'), 'down',
                            '--workdir', local.workdir]),
              shlex.quote(local.workdir)))


def _print_horizon(keystone, api, horizon):
    alice = keystone.users['alice']
    admin = keystone.users['admin']
    print('\nHorizon with the progress plugin: %s\n'
          '  log in as %s / %s (member of project %s: Project -> Compute '
          '-> Images)\n'
          '  or as %s / %s (Admin -> Compute -> Images)\n'
          'Its catalog\'s glance-api (Keystone flavor, the progress '
          'filter): %s\n'
          'Upload as alice, and watch the Progress column:\n'
          '  %s' % (
              horizon.url, alice.name, alice.password, alice.project,
              admin.name, admin.password, api.url,
              command_line([venv_bin('glance'), '--os-image-url', api.url,
                            '--os-auth-url', keystone.auth_url,
                            '--os-username', alice.name, '--os-password',
                            alice.password, '--os-project-name',
                            alice.project, '--os-user-domain-name',
                            'Default', '--os-project-domain-name',
                            'Default', 'image-create', '--name', 'from-cli',
                            '--disk-format', 'raw', '--container-format',
                            'bare', '--file', os.path.join(
                                os.path.dirname(api.workdir), 'demo.raw'),
                            '--progress'])))


def _du(path):
    """Bytes of the regular files under path."""
    total = 0
    for parent, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='tools/demo', description=__doc__.split('\n\n')[0],
        epilog='Run as root on Debian; tools/demo installs everything.')
    parser.add_argument('--size', default='1G',
                        help='size of the generated image, e.g. 512M, 1G, '
                             '4G (default 1G)')
    parser.add_argument('--keep', action='store_true',
                        help='leave Ceph, memcached and glance-api running '
                             'and print how to use and stop them')
    parser.add_argument('--no-horizon', dest='horizon',
                        action='store_false',
                        help='with --keep: do not start Keystone and '
                             'Horizon with the progress plugin (Horizon '
                             '27 is installed in its own venv the first '
                             'time, about 2 min)')
    parser.add_argument('--workdir',
                        help='where the stack keeps its state (default: a '
                             'temporary directory)')
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
