#!/usr/bin/env python3
"""The main job: an upload through glance-api into Ceph, with live progress.

Boots the local stack (a one-node Ceph, memcached, glance-api under uWSGI
configured with ``stores = progress_rbd``: the same code the end-to-end
tests use), generates an image, uploads it with python-glanceclient while
``glance-progress watch`` draws its progress, then prints the image's
checksum, its RBD location and the final progress record. Run it through
``tools/demo``, which installs what it needs first.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import glance_stack  # noqa: E402
import testbed  # noqa: E402

MiB = 1024 * 1024


def parse_size(text):
    units = {'K': 1024, 'M': MiB, 'G': 1024 * MiB}
    text = text.strip().upper().rstrip('IB')
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


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


def glance_progress(*args):
    return [os.path.join(os.path.dirname(sys.executable), 'glance-progress'),
            *args]


def run(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix='glance-progress-demo-')
    size = parse_size(args.size)
    ceph = testbed.CephCluster(os.path.join(workdir, 'ceph'),
                               memstore_bytes=size * 2 + 4 * 1024 * MiB)
    memcached = testbed.Memcached()
    api = None
    keep = False
    try:
        started = time.monotonic()
        ceph.start()
        ceph.create_pool(testbed.DEFAULT_POOL)
        memcached.start()
        api = glance_stack.GlanceAPI(workdir, ceph, memcached.address)
        api.start()
        print('local stack up in %.0f s: Ceph %s, memcached %s, glance-api '
              '%s (stores = progress_rbd)' % (
                  time.monotonic() - started, ceph.mon_addr,
                  memcached.address, api.url))

        path = os.path.join(workdir, 'demo.raw')
        print('generating a %s image ...' % args.size)
        md5, sha512 = make_image(path, size)

        client = api.client()
        image = client.images.create(name='progress-demo', disk_format='raw',
                                     container_format='bare')
        print('uploading image %s with python-glanceclient; '
              'glance-progress watch follows it:\n' % image['id'])
        upload = _Upload(client, image['id'], path, size)
        upload.start()
        watch = subprocess.run(glance_progress(
            'watch', image['id'], '--servers', memcached.address,
            '--interval', '0.25'))
        upload.join()
        if upload.error is not None:
            raise upload.error

        image = client.images.get(image['id'])
        print('\nimage %s is %s: %d bytes in %.1f s (%.0f MiB/s through '
              'glance-api)' % (image['id'], image['status'], image['size'],
                               upload.seconds,
                               image['size'] / MiB / upload.seconds))
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
        sys.stdout.flush()
        subprocess.run(glance_progress('show', image['id'], '--json',
                                       '--servers', memcached.address))
        ok = (watch.returncode == 0 and image['status'] == 'active' and
              image['checksum'] == md5 and image['os_hash_value'] == sha512)
        if args.keep:
            keep = True
            _print_keep(api, ceph, memcached, workdir)
        return 0 if ok else 1
    finally:
        if not keep:
            for service in (api, memcached, ceph):
                if service is not None:
                    service.stop()
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)


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


def _print_keep(api, ceph, memcached, workdir):
    glance_stack.write_state(workdir, ceph, memcached, api)
    env = ' '.join('%s=%s' % kv for kv in sorted(api.cli_env().items()))
    venv_bin = os.path.dirname(sys.executable)
    print('\nThe stack is still running (--keep). Use it with:\n'
          '  export %s\n'
          '  %s/glance image-create --name x --disk-format raw '
          '--container-format bare --file FILE --progress\n'
          '  %s/glance-progress watch IMAGE_ID --servers %s\n'
          '  rbd -c %s ls images\n'
          'Stop it with:\n'
          '  %s tools/glance_stack.py down --workdir %s' % (
              env, venv_bin, venv_bin, memcached.address, ceph.conf_path,
              sys.executable, workdir))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='Run as root on Debian; tools/demo installs everything.')
    parser.add_argument('--size', default='1G',
                        help='size of the generated image, e.g. 512M, 1G, '
                             '4G (default 1G)')
    parser.add_argument('--keep', action='store_true',
                        help='leave Ceph, memcached and glance-api running '
                             'and print how to use and stop them')
    parser.add_argument('--workdir',
                        help='where the stack keeps its state (default: a '
                             'temporary directory)')
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
