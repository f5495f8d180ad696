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

"""``glance-progress``: show or watch the upload progress of glance images.

Operators run it next to glance-api: it finds the memcached servers and
key prefix in glance's own configuration
(:mod:`glance_progress_store.read.sources`) and reads the records that
the ``progress_rbd`` store publishes (:mod:`glance_progress_store.read.lookup`,
which never unpickles or evaluates anything, so a memcached that others
can write to cannot run code in an operator's shell), shown as
:mod:`glance_progress_store.read.views`; ``watch`` follows them
(:mod:`glance_progress_store.cmd.watch`).

``orphans`` also reads the stores' pools from that configuration and
lists the RBD images of unfinished uploads
(:mod:`glance_progress_store.ops.orphans`); it is the only sub-command
that needs Ceph's Python bindings. ``exporter`` is the only one that
needs prometheus_client, imported when it runs.

This module only parses the command line and dispatches: every
sub-command is a ``cmd_*(args)`` that returns its exit code
(:mod:`glance_progress_store.read.states`, also in ``--help``).
"""

import argparse
import re
import sys
import time

from glance_progress_store.cmd import exporter
from glance_progress_store.cmd import watch
from glance_progress_store.ops import ceph_bindings
from glance_progress_store.ops import orphans
from glance_progress_store.ops import orphans_report
from glance_progress_store.read import discovery
from glance_progress_store.read import lookup
from glance_progress_store.read import sources
from glance_progress_store.read import states
from glance_progress_store.read import views


def _settings(args, backend=None):
    """Where the records are: glance-api's configuration, then the
    command line's overrides."""
    return sources.read_settings(args.config_file, args.config_dir,
                                 args.servers, args.prefix, backend=backend,
                                 warn=_warn)


def cmd_show(args):
    records_lookup = lookup.Lookup(_settings(args, args.backend),
                                   args.stall_after)
    records_lookup.poll()
    shown = []
    now = time.time()
    for image_id in args.image_ids:
        shown += lookup.show_views(records_lookup, image_id, args.backend,
                                   now)
    if args.json:
        print('\n'.join(v.to_json() for v in shown))
    else:
        print('\n\n'.join(views.describe(v) for v in shown))
    return views.exit_code(shown)


def cmd_list(args):
    settings = _settings(args, args.backend)
    snapshot = discovery.discover(settings, since=args.since,
                                  stall_after=args.stall_after)
    found = [v for v in snapshot.views
             if (args.state is None or v.state in args.state) and
             (args.backend is None or v.backend == args.backend)]
    if args.json:
        if found:
            print('\n'.join(v.to_json() for v in found))
    elif found:
        print(views.table(found))
    elif snapshot.views:
        print('no upload matches --state or --backend')
    elif not snapshot.unreadable:
        print('no upload in flight' + (
            '' if args.since is None else ', and none ended within %s'
            % views.human_duration(args.since)))
    elif len(snapshot.unreadable) < len(settings.servers()):
        print('no upload in flight on the memcached servers that answered')
    else:
        print('nothing could be read: no memcached server answered')
    for server, why in sorted(snapshot.unreadable.items()):
        sys.stderr.write('glance-progress: memcached %s %s: its uploads '
                         'are not listed\n' % (server, why))
    code = views.exit_code(found)
    if snapshot.unreadable:
        code = max(code, states.EXIT_UNREACHABLE)
    return code


def cmd_watch(args):
    return watch.Watch(
        _settings(args, args.backend), args.image_ids, sys.stdout,
        backend=args.backend,
        stall_after=args.stall_after, interval=args.interval,
        timeout=args.timeout, wait_start=args.wait_start).run()


def cmd_orphans(args):
    # orphans checks --backend itself: it needs that backend's pool
    settings = _settings(args)
    targets = orphans.orphan_targets(
        settings, args.config_file, args.config_dir, backend=args.backend,
        pools=args.pool, ceph_conf=args.ceph_conf, rbd_user=args.rbd_user)
    findings, counted = orphans.find_orphans(
        targets, settings, args.stall_after, args.ceph_timeout)
    findings.sort(key=lambda f: (f.pool, f.image is not None, f.image))
    if args.json:
        if findings:
            print('\n'.join(f.to_json() for f in findings))
    else:
        if findings:
            print(orphans_report.table(findings) + '\n')
        print(orphans_report.summary(findings, counted))
        removal = orphans_report.removal_text(findings)
        if removal:
            print('\n' + removal)
    return orphans.exit_code(findings)


def cmd_exporter(args):
    # prometheus_client only for the exporter, not for every show
    from glance_progress_store.cmd.exporter import server
    return server.run(args, _settings(args, args.backend))


def cmd_link_ceph_bindings(args):
    return ceph_bindings.run(args)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is our 'stalled'."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(states.EXIT_USAGE, '%s: error: %s\n' % (self.prog,
                                                          message))


def _image_id(text):
    # An empty id would read the keys "_upload_status"...: nobody's.
    if not text:
        raise argparse.ArgumentTypeError('must not be empty')
    return text


_DURATION = re.compile(r'\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smhd]?)\s*\Z',
                       re.IGNORECASE | re.ASCII)
DURATION_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400}
DURATION_FORMS = '90, 90s, 15m, 1.5h, 2H, 1d'


def parse_duration(text):
    """The one grammar of every time option: seconds, or a number with a
    unit (s, m, h, d; either case). ValueError if it is not one."""
    match = _DURATION.match(text or '')
    if not match:
        raise ValueError('not a duration: %r (e.g. %s)'
                         % (text, DURATION_FORMS))
    return float(match.group(1)) * DURATION_UNITS[match.group(2).lower()]


def _duration(minimum=0.0):
    """An argparse type: a duration of at least ``minimum`` seconds."""
    def convert(text):
        try:
            value = parse_duration(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))
        if value < minimum:
            raise argparse.ArgumentTypeError('must be at least %g s'
                                             % minimum)
        return value
    return convert


def _states(text):
    chosen = [word.strip() for word in text.split(',') if word.strip()]
    unknown = [w for w in chosen if w not in LIST_STATES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            'states are %s' % ', '.join(LIST_STATES))
    return chosen


LIST_STATES = (states.UPLOADING, states.FINALIZING, states.STALLED,
               states.STORED, states.FAILED, states.BAD)


def _version():
    from importlib import metadata
    try:
        return metadata.version('glance_progress_store')
    except metadata.PackageNotFoundError:
        return 'unknown'


def _common_options(backend_help, stall_help):
    """The options every sub-command has: where the records are."""
    common = _Parser(add_help=False)
    where = common.add_argument_group('where to read')
    where.add_argument(
        '--config-file', action='append', metavar='PATH',
        help='glance-api configuration file; repeatable. Default: %s and '
             '%s/ when they exist' % (sources.DEFAULT_CONFIG_FILE,
                                      sources.DEFAULT_CONFIG_DIR))
    where.add_argument(
        '--config-dir', action='append', metavar='DIR',
        help='directory of *.conf files read after the config files')
    where.add_argument(
        '--servers', metavar='HOST:PORT,...',
        help='memcached servers, in the order glance-api lists them; '
             'overrides progress_memcached_servers')
    where.add_argument(
        '--prefix', metavar='PREFIX',
        help='key prefix; overrides progress_key_prefix')
    where.add_argument('--backend', metavar='NAME', help=backend_help)
    common.add_argument('--stall-after', type=_duration(), default=60.0,
                        metavar='S', help=stall_help)
    return common


ORPHANS_DESCRIPTION = """\
List the RBD images of unfinished uploads in the progress_rbd pools.

Every upload the store finishes has a protected snapshot "snap"; an image
without it is an upload in progress, or a partial upload that nothing will
finish: its glance-api worker was killed (SIGKILL, OOM) or its cleanup
failed. Each one is classified with its progress record:

not orphans:
  in progress   record uploading/finalizing, updated within --stall-after
  new           no record yet, and created less than --stall-after ago
orphans:
  stalled       record uploading/finalizing, older: the worker died
  failed        record failed, yet the image is there: its cleanup failed
  no record     record expired, or progress disabled; AGE is the image's
                own (Ceph's create timestamp)
  bad           a record this package did not write
  inconsistent  record stored, but the image has no protected snapshot
and unreachable: memcached (or Ceph, for a whole pool) did not answer.

The pools (rbd_store_pool), ceph.conf (rbd_store_ceph_conf), user
(rbd_store_user) and memcached servers are read from glance-api's
configuration: [glance_store], or every progress_rbd backend of
enabled_backends (falling back to [backend_defaults]). It never removes
anything: it prints the commands to run once `glance image-show ID` shows
that glance does not use the image. Needs Ceph's Python bindings.
"""


def build_parser():
    common = _common_options(
        backend_help='read the upload into this multi-store backend only. '
                     'Default: the image\'s latest upload and every '
                     'backend\'s upload',
        stall_help='call an upload stalled when it has not been updated '
                   'for S seconds (a dead glance-api worker, a Ceph cluster '
                   'that blocks writes); assumes the clocks agree '
                   '(default: 60)')
    orphans_common = _common_options(
        backend_help='check this multi-store backend\'s pool only',
        stall_help='an unfinished image whose record has not been updated '
                   'for S seconds is stalled; one without a record is new '
                   'until it is S seconds old. Keep it above '
                   'progress_min_interval; assumes the clocks agree '
                   '(default: 60)')

    parser = _Parser(
        prog='glance-progress', epilog=states.EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Show the progress of glance image uploads into\n'
                    'progress_rbd stores, as published to memcached.\n'
                    'orphans: partial uploads left in Ceph (exit codes: '
                    'orphans --help).\n\n'
                    'Every time option (S, DURATION) takes seconds or a '
                    'number with a\nunit: %s.' % DURATION_FORMS)
    parser.add_argument('--version', action='version',
                        version='%(prog)s ' + _version())
    subs = parser.add_subparsers(dest='command', metavar='COMMAND')
    subs.required = True

    show = subs.add_parser(
        'show', parents=[common], epilog=states.EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='print the state of uploads once',
        description='Print the state, size, progress, average rate, ETA\n'
                    'and age of the upload of each image.')
    show.add_argument('image_ids', nargs='+', metavar='IMAGE_ID',
                      type=_image_id)
    show.add_argument(
        '--json', action='store_true',
        help='one JSON object per record and line, with the fields '
             'image_id, backend, state, bytes, total, percent, '
             'rate_bytes_per_s, eta_s, age_s, started_at, updated_at, '
             'reason, error')
    show.set_defaults(func=cmd_show)

    watch = subs.add_parser(
        'watch', parents=[common], epilog=states.EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='follow uploads until they end',
        description='Follow the uploads of the images until each one is '
                    'stored or failed.\n\n'
                    'On a terminal: one progress bar per upload. Otherwise '
                    'one line per\nupdate of an upload:\n\n'
                    '  IMAGE BACKEND STATE BYTES/TOTAL PCT RATE ETA '
                    '[MESSAGE]\n\n'
                    'BACKEND is "-" for the plain keys, TOTAL "?" while '
                    'unknown, RATE in\nB/s, ETA in seconds, "-" where '
                    'there is no value; MESSAGE is the\nfailure reason or '
                    'the error. Lines starting with "#" are notes.')
    watch.add_argument('image_ids', nargs='+', metavar='IMAGE_ID',
                       type=_image_id)
    watch.add_argument('--interval', type=_duration(0.01), default=1.0,
                       metavar='S', help='seconds between polls (default: 1)')
    watch.add_argument('--timeout', type=_duration(), metavar='S',
                       help='stop after S seconds (exit 5); default: never')
    watch.add_argument(
        '--wait-start', type=_duration(), default=30.0, metavar='S',
        help='how long an image may have no record before it is unknown: '
             'watching may start before the upload (default: 30)')
    watch.set_defaults(func=cmd_watch)

    listing = subs.add_parser(
        'list', parents=[common], epilog=states.EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='list every upload in flight, without knowing image ids',
        description='List every upload in flight (uploading, finalizing, '
                    'stalled) into the\nprogress_rbd stores of the '
                    'configuration, on every memcached server,\nfound '
                    'through the glance-api processes\' indexes (see '
                    'progress_discovery):\nno image id needed, no scan of '
                    'memcached. Stalled, failed and bad ones\ncome first. '
                    'A server that does not answer is named on stderr and '
                    'the\nothers are listed (exit 4).')
    listing.add_argument(
        '--since', type=_duration(), metavar='DURATION',
        help='also uploads stored or failed within DURATION (90s, 15m, 2h, '
             '1d), as far as progress_index_retention keeps them')
    listing.add_argument(
        '--state', type=_states, metavar='STATE[,STATE...]',
        help='only these states: %s' % ', '.join(LIST_STATES))
    listing.add_argument(
        '--json', action='store_true',
        help='one JSON object per upload and line, the fields of show '
             '--json')
    listing.set_defaults(func=cmd_list)

    orphan = subs.add_parser(
        'orphans', parents=[orphans_common], epilog=states.ORPHANS_EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='list partial uploads left in Ceph (for cron)',
        description=ORPHANS_DESCRIPTION)
    ceph = orphan.add_argument_group('where to look in Ceph')
    ceph.add_argument(
        '--pool', action='append', metavar='NAME',
        help='check this pool instead of the configured ones; repeatable')
    ceph.add_argument(
        '--ceph-conf', metavar='PATH',
        help='ceph.conf to use; overrides rbd_store_ceph_conf')
    ceph.add_argument(
        '--rbd-user', metavar='USER',
        help='Ceph user (without "client."); overrides rbd_store_user. '
             'Default, as glance: librados\' default')
    ceph.add_argument(
        '--ceph-timeout', type=_duration(0.01), default=30.0, metavar='S',
        help='give up on a Ceph operation after S seconds (default: 30)')
    orphan.add_argument(
        '--json', action='store_true',
        help='one JSON object per unfinished image (and per pool that '
             'could not be checked) and line, with the fields %s'
             % ', '.join(orphans.JSON_FIELDS))
    orphan.set_defaults(func=cmd_orphans)
    _add_exporter(subs, common)
    _add_link_ceph_bindings(subs)
    return parser


def _listen(text):
    try:
        return exporter.parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _add_exporter(subs, common):
    parser = subs.add_parser(
        'exporter', parents=[common],
        epilog=states.exit_help(states.EXPORTER_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='serve /metrics for Prometheus and a live page',
        description=exporter.DESCRIPTION)
    parser.add_argument(
        '--listen', type=_listen,
        default=exporter.parse_listen(exporter.DEFAULT_LISTEN),
        metavar='HOST:PORT',
        help='address to listen on (default: %s)' % exporter.DEFAULT_LISTEN)
    parser.add_argument(
        '--refresh', type=_duration(0.1), default=exporter.DEFAULT_REFRESH,
        metavar='DURATION', help='time between reads of memcached '
                                 '(default: %gs)' % exporter.DEFAULT_REFRESH)
    parser.add_argument(
        '--since', type=_duration(), default=exporter.DEFAULT_SINCE,
        metavar='DURATION',
        help='also list uploads stored or failed within DURATION (%s); '
             'failures are counted from these; 0: only uploads in flight '
             '(default: 5m)' % DURATION_FORMS)
    parser.set_defaults(func=cmd_exporter)


def _add_link_ceph_bindings(subs):
    parser = subs.add_parser(
        'link-ceph-bindings',
        epilog=states.exit_help(states.LINK_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='make the distribution\'s rados and rbd modules importable in '
             'a virtual environment (glance-api\'s)',
        description=ceph_bindings.__doc__.split('\n\n', 1)[1])
    parser.add_argument(
        'venv', metavar='VENV',
        help='the virtual environment glance-api runs in (the directory '
             'with bin/python)')
    parser.add_argument(
        '--dist-packages', metavar='DIR',
        default=ceph_bindings.DIST_PACKAGES,
        help='where the distribution installed rados and rbd (default: '
             '%(default)s; Red Hat: /usr/lib64/python3.X/site-packages)')
    parser.set_defaults(func=cmd_link_ceph_bindings)


def _warn(text):
    sys.stderr.write('glance-progress: warning: %s\n' % text)


# The libraries a sub-command imports when it runs, and the package's
# extra (setup.cfg) that brings each: the core has neither.
_EXTRA_OF = {'prometheus_client': 'exporter', 'glance_store': 'store'}


def main(argv=None):
    """Entry point of ``glance-progress``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (sources.ConfigError, orphans.BindingsMissing) as e:
        sys.stderr.write('glance-progress: error: %s\n' % e)
        return states.EXIT_USAGE
    except ModuleNotFoundError as e:
        extra = _EXTRA_OF.get((e.name or '').split('.')[0])
        if extra is None:
            raise
        sys.stderr.write(
            'glance-progress: error: %s needs %s, which is not installed '
            'here: install glance_progress_store[%s]\n'
            % (args.command, e.name.split('.')[0], extra))
        return states.EXIT_USAGE
    except KeyboardInterrupt:
        return states.EXIT_INTERRUPTED


if __name__ == '__main__':
    sys.exit(main())
