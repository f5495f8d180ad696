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

"""What upload notifications cost, with the broker up, frozen and stopped.

One Ceph, memcached and private RabbitMQ, and three glance-apis that
differ only in their notification settings:

- ``noop``: glance's default driver, nothing sent: the baseline;
- ``ours``: ``driver = messagingv2`` to the broker, glance's own
  ``image.*`` events disabled (``disabled_notifications``): the time of
  an upload shows what this package's events add;
- ``glance``: ``driver = messagingv2``, this package's events off
  (``progress_notifications = False``): what glance itself does.

Each creates an image and uploads SIZE into it, ``--runs`` times, with
the broker up (after one upload that connects each sender), frozen
(SIGSTOP) and stopped; medians are reported. A request that has not
answered within ``--deadline`` seconds counts as hung::

    .venv/bin/python tools/bench_notifications.py --size 256M --runs 3
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
from testbed.figures import conclude  # noqa: E402
from testbed.figures import make_source  # noqa: E402
from testbed import glance_api  # noqa: E402
from testbed.sizes import human  # noqa: E402
from testbed.sizes import parse_size  # noqa: E402

# An upload with our events and the broker away takes at most this much
# longer than with no notifications at all.
TARGETS = {'ours_ratio': 1.15}
# glance's own events of an image-create, an upload and a delete: the
# image's status changes send image.update.
GLANCE_EVENTS = ('image.create,image.update,image.prepare,image.upload,'
                 'image.activate,image.delete')
LEGS = ('noop', 'ours', 'glance')
BROKER = ('up', 'frozen', 'stopped')


def _conf(leg, rabbitmq):
    if leg == 'noop':
        return {}
    conf = rabbitmq.glance_conf()
    if leg == 'ours':
        conf['DEFAULT'] = {'disabled_notifications': GLANCE_EVENTS}
    else:
        conf['glance_store'] = {'progress_notifications': False}
    return conf


def _client(api, deadline):
    from glanceclient.v2 import client
    return client.Client(api.url, token=glance_api.NOAUTH_TOKEN,
                         timeout=deadline)


def _one(api, source, size, deadline):
    """(create s, upload s); None for a request that failed or hung."""
    client = _client(api, deadline)
    started = time.monotonic()
    try:
        image_id = client.images.create(
            name='bench-notifications', disk_format='raw',
            container_format='bare')['id']
    except Exception as e:
        _say('    create failed after %.1f s: %s'
             % (time.monotonic() - started, type(e).__name__))
        return None, None
    created = time.monotonic() - started
    started = time.monotonic()
    try:
        with open(source, 'rb') as body:
            client.images.upload(image_id, body, image_size=size)
        uploaded = time.monotonic() - started
    except Exception as e:
        _say('    upload failed after %.1f s: %s'
             % (time.monotonic() - started, type(e).__name__))
        uploaded = None
    try:
        _client(api, 10).images.delete(image_id)
    except Exception:
        pass
    return created, uploaded


def run(args):
    size = parse_size(args.size)
    results = {}  # (leg, broker) -> [(create, upload)]
    with tempfile.TemporaryDirectory(prefix='bench-notif-',
                                     dir=args.workdir) as workdir:
        source = os.path.join(workdir, 'source')
        make_source(source, size)
        with testbed.LocalStack(os.path.join(workdir, 'stack')) as stack, \
                testbed.RabbitMQ(os.path.join(workdir, 'rabbitmq')) as mq:
            apis = {leg: stack.add_glance(leg, mode='single',
                                          workers=args.workers,
                                          extra_conf=_conf(leg, mq))
                    for leg in LEGS}
            for api in apis.values():  # connect every sender
                _one(api, source, size, args.deadline)
            for broker in BROKER:
                if broker == 'frozen':
                    mq.freeze()
                elif broker == 'stopped':
                    mq.stop()
                for leg in LEGS:
                    _say('%s, broker %s ...' % (leg, broker))
                    runs = results[leg, broker] = []
                    for _ in range(args.runs):
                        runs.append(_one(apis[leg], source, size,
                                         args.deadline))
                        if runs[-1][1] is None:
                            break  # hung: once is enough
                if broker == 'frozen':
                    mq.thaw()
                    time.sleep(5)  # what waited goes out
    return results, size


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(results, size, args):
    def cell(value, runs):
        if value is None:
            return 'hung/failed (%d of %d)' % (
                sum(1 for r in runs if r is None), len(runs))
        return '%.2f s' % value

    print('\n%s per upload, median of %d; create and upload timed apart; '
          'deadline %.0f s' % (human(size), args.runs, args.deadline))
    print('%-8s %-8s %-26s %-26s' % ('leg', 'broker', 'image-create',
                                     'upload'))
    for (leg, broker), runs in results.items():
        creates = [r[0] for r in runs]
        uploads = [r[1] for r in runs]
        print('%-8s %-8s %-26s %-26s' % (
            leg, broker, cell(_median(creates), creates),
            cell(_median(uploads), uploads)))
    missed = []
    base = _median(r[1] for r in results['noop', 'up'])
    for broker in ('frozen', 'stopped'):
        ours = _median(r[1] for r in results['ours', broker])
        if ours is None or base is None or (
                ours > TARGETS['ours_ratio'] * base):
            missed.append('ours, broker %s: %s s against %s s without '
                          'notifications' % (broker, ours, base))
    return missed


def _say(text):
    print(text, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='256M',
                        help='upload size (default 256M)')
    parser.add_argument('--runs', type=int, default=3,
                        help='uploads per leg and broker state (default 3)')
    parser.add_argument('--workers', type=int, default=2,
                        help='uWSGI processes of each glance-api (default 2)')
    parser.add_argument('--deadline', type=float, default=60.0,
                        help='seconds after which a request counts as hung '
                        '(default 60)')
    parser.add_argument('--workdir', default=None,
                        help='where the cluster and the source file live')
    args = parser.parse_args(argv)
    print('machine: %d cores; %s, %d runs' % (
        os.cpu_count(), args.size, args.runs), file=sys.stderr)
    return conclude(report(*run(args), args))


if __name__ == '__main__':
    sys.exit(main())
