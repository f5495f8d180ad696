"""``glance-progress``: show or watch the upload progress of glance images.

Operators run it next to glance-api: it finds the memcached servers and
key prefix in glance's own configuration
(:mod:`glance_progress_store.glance_config`) and reads the records that
the ``progress_rbd`` store publishes, shown as
:mod:`glance_progress_store.views`. Values are read with
:class:`~glance_progress_store.reader.ProgressReader`, which never unpickles
or evaluates anything, so a memcached that others can write to cannot run
code in an operator's shell.

``orphans`` also reads the stores' pools from that configuration and lists
the RBD images of unfinished uploads (:mod:`glance_progress_store.orphans`);
it is the only sub-command that needs Ceph's Python bindings.

Exit codes: see ``EXIT_HELP`` and ``ORPHANS_EXIT_HELP`` (also in
``--help``).
"""

import argparse
import dataclasses
import os
import sys
import time

from glance_progress_store import ceph_bindings
from glance_progress_store import glance_config
from glance_progress_store import orphans
from glance_progress_store import reader as reader_mod
from glance_progress_store import records
from glance_progress_store import views as views_mod

EXIT_HELP = """\
exit codes (the highest applicable one wins):
  0   every record shown is uploading, finalizing or stored (watch: stored)
  1   an upload failed
  2   an upload stalled: no update for --stall-after seconds
  3   no record (unknown), or a value this package did not write (bad)
  4   memcached unreachable
  5   watch: --timeout reached before every upload ended
  64  usage or configuration error
"""

ORPHANS_EXIT_HELP = """\
exit codes (the highest applicable one wins):
  0   no orphan: every unfinished image is an upload in progress (or new)
  1   orphans found: stalled, failed, no record, bad or inconsistent
  4   Ceph or memcached unreachable
  64  usage or configuration error (a missing pool, no Ceph bindings)
"""

EXIT_TIMEOUT = 5  # watch --timeout; 0 to 4 are views_mod's
EXIT_USAGE = 64
EXIT_ORPHANS = 1  # orphans: the cron job's alert

WAITING = 'waiting'  # watch only: no record yet, within --wait-start


# --- Reading ---------------------------------------------------------------

class Lookup(object):
    """Reads views of records; one reader per source, checked every poll."""

    def __init__(self, settings, stall_after):
        self.settings = settings
        self.stall_after = stall_after
        self._readers = {}
        self.down = {}  # source -> why it is unreachable, this poll

    def poll(self):
        """Check every source once; unanswered ones are reported, not read."""
        self.down = {}
        for source in self.settings.sources():
            reader = self._readers.get(source)
            if reader is None:
                reader = self._readers[source] = reader_mod.ProgressReader(
                    source.servers, source.prefix)
            try:
                reader.check_servers()
            except reader_mod.MemcachedUnavailable as e:
                self.down[source] = str(e)
                # python-memcached would skip a dead server for 30 s
                del self._readers[source]

    def targets(self, backend):
        """(backend, source) pairs to read: all of them without --backend."""
        if backend is not None:
            return [(backend, self.settings.source_of(backend))]
        pairs = [(None, s) for s in self.settings.plain_sources]
        pairs += [(b, s) for b, s in self.settings.backends.items()
                  if s not in self.down]  # the plain pair reports it
        return pairs

    def read(self, image_id, backend, source):
        """(record or None, error view or None)."""
        if source in self.down:
            return None, views_mod.error_view(
                image_id, backend, views_mod.UNREACHABLE, '%s (check '
                'progress_memcached_servers or --servers)'
                % self.down[source])
        try:
            return self._readers[source].get(image_id, backend), None
        except records.BadRecord as e:
            return None, views_mod.error_view(image_id, backend,
                                              views_mod.BAD, str(e))


def show_views(lookup, image_id, backend, now):
    """The plain record and each backend's record that exists.

    Without --backend, a missing record only shows (as unknown) when
    nothing at all is known of the image.
    """
    views = []
    for name, source in lookup.targets(backend):
        record, error = lookup.read(image_id, name, source)
        if error is not None or record is not None or backend is not None:
            views.append(error or views_mod.view_of(
                image_id, name, record, now, lookup.stall_after))
    return views or [views_mod.view_of(image_id, None, None, now,
                                       lookup.stall_after)]


# --- Sub-commands ----------------------------------------------------------

def cmd_show(args, settings):
    lookup = Lookup(settings, args.stall_after)
    lookup.poll()
    views = []
    now = time.time()
    for image_id in args.image_ids:
        views += show_views(lookup, image_id, args.backend, now)
    if args.json:
        print('\n'.join(v.to_json() for v in views))
    else:
        print('\n\n'.join(views_mod.describe(v) for v in views))
    return views_mod.exit_code(views)


class Watch(object):
    """Polls the records until every upload ended, one bar or line each."""

    def __init__(self, args, settings, out):
        self.args = args
        self.lookup = Lookup(settings, args.stall_after)
        self.out = out
        self.started = time.monotonic()
        self.last_records = {}  # a record that vanished keeps its last state
        self.reachable = set()
        self.down_since = {}

    def rows(self):
        """This poll's (view, final) pairs, one per upload."""
        self.lookup.poll()
        now, mono = time.time(), time.monotonic()
        rows = []
        for image_id in self.args.image_ids:
            read = [self._read(image_id, name, source, now, mono)
                    for name, source in self.lookup.targets(self.args.backend)]
            found = [r for r in read if r[0].state != views_mod.UNKNOWN]
            named = [r for r in found if r[0].backend is not None]
            if named:  # the plain keys repeat one of these records
                found = named + [r for r in found if r[0].error and
                                 r[0].backend is None]
            if not found:
                waiting = mono - self.started < self.args.wait_start
                state = WAITING if waiting else views_mod.UNKNOWN
                found = [(dataclasses.replace(read[0][0], state=state),
                          not waiting)]
            rows += found
        return rows

    def _read(self, image_id, backend, source, now, mono):
        record, error = self.lookup.read(image_id, backend, source)
        if error is not None and error.state == views_mod.UNREACHABLE:
            # wrong servers: give up at once; a restart: give it time
            down_for = mono - self.down_since.setdefault(source, mono)
            return error, (source not in self.reachable or
                           down_for >= self.args.stall_after)
        if error is not None:
            return error, True
        self.reachable.add(source)
        self.down_since.pop(source, None)
        key = (image_id, backend, source)
        if record is None:  # expired, or memcached restarted: keep the last
            record = self.last_records.get(key)
        else:
            self.last_records[key] = record
        view = views_mod.view_of(image_id, backend, record, now,
                                 self.args.stall_after)
        return view, view.state not in views_mod.ACTIVE

    def run(self):
        timeout = self.args.timeout
        deadline = None if timeout is None else self.started + timeout
        display = (_Bars(self.out) if _is_terminal(self.out)
                   else _Lines(self.out))
        try:
            while True:
                rows = self.rows()
                views = [view for view, _ in rows]
                display.update(views)
                if all(final for _, final in rows):
                    return views_mod.exit_code(views)
                pause = self.args.interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        display.message('timed out after %s'
                                        % views_mod.human_duration(timeout))
                        return max(EXIT_TIMEOUT, views_mod.exit_code(views))
                    pause = min(pause, left)
                time.sleep(pause)
        finally:
            display.close()


def _is_terminal(out):
    """A terminal with a known width: tqdm draws nothing in 0 columns
    (a pty without a window size, as under `script` or some CI runners)."""
    if not out.isatty():
        return False
    try:
        return os.get_terminal_size(out.fileno()).columns >= 20
    except (OSError, ValueError):
        return False


class _Lines(object):
    """Not a terminal: a plain line whenever a record changes."""

    def __init__(self, out):
        self.out = out
        self.shown = {}

    def update(self, views):
        for view in views:
            key = (view.image_id, view.backend)
            seen = (view.state, view.bytes, view.total, view.updated_at,
                    view.error)
            if self.shown.get(key) != seen:
                self.shown[key] = seen
                self.out.write(views_mod.plain_line(view) + '\n')
        self.out.flush()

    def message(self, text):
        self.out.write('# %s\n' % text)

    def close(self):
        self.out.flush()


class _Bars(object):
    """A terminal: one tqdm progress bar per upload."""

    def __init__(self, out):
        import tqdm
        self._tqdm = tqdm.tqdm
        self.out = out
        self.bars = {}

    def _bar(self, key, keys):
        bar = self.bars.get(key)
        if bar is None:
            # an image's "waiting" bar becomes its first backend's bar
            old = [k for k in self.bars if k[0] == key[0] and k not in keys]
            if old:
                bar = self.bars[key] = self.bars.pop(old[0])
            else:
                bar = self.bars[key] = self._tqdm(
                    file=self.out, position=len(self.bars), leave=True,
                    dynamic_ncols=True, bar_format='{desc}')
        return bar

    def update(self, views):
        keys = [(v.image_id, v.backend) for v in views]
        width = max(len(views_mod.label(v)) for v in views)
        for key, view in zip(keys, views):
            bar = self._bar(key, keys)
            info = (views_mod.bar_info(view)
                    .replace('{', '{{').replace('}', '}}'))
            bar.total = view.total or None
            if view.bytes is not None:
                bar.n = view.bytes
            bar.desc = views_mod.label(view).ljust(width)
            bar.bar_format = ('{desc} |{bar:30}| ' if bar.total
                              else '{desc} ') + info
            bar.refresh()

    def message(self, text):
        self._tqdm.write(text, file=self.out)

    def close(self):
        for bar in self.bars.values():
            bar.close()


def cmd_watch(args, settings):
    return Watch(args, settings, sys.stdout).run()


def orphan_finding(lookup, partial, now, stall_after):
    """Classify an unfinished image with the first record found for it."""
    error = None
    for source, backend in partial.target.records_at:
        record, problem = lookup.read(partial.name, backend, source)
        if record is not None:
            return orphans.classify(partial, record, now, stall_after)
        error = error or problem
    if error is not None:
        return orphans.classify(partial, None, now, stall_after,
                                error_state=error.state, error=error.error)
    return orphans.classify(partial, None, now, stall_after)


def find_orphans(targets, settings, stall_after, ceph_timeout):
    """([Finding], [(pool, number of images)]) for the targets."""
    findings, counted, partial = [], [], []
    with orphans.Ceph(ceph_timeout) as ceph:
        for target in targets:
            result = ceph.scan(target)
            if isinstance(result, orphans.PoolProblem):
                findings.append(orphans.pool_finding(result))
                continue
            counted.append((target.pool, result[0]))
            partial += result[1]
        if not partial:
            return findings, counted
        lookup = Lookup(settings, stall_after)
        lookup.poll()  # memcached is only needed when something is partial
        now = time.time()
        for image in partial:
            finding = orphan_finding(lookup, image, now, stall_after)
            # "stored": it may have got its snapshot since it was listed
            if (finding.record_state != records.STORED or
                    ceph.still_partial(image)):
                findings.append(finding)
    return findings, counted


def orphans_exit_code(findings):
    codes = [views_mod.EXIT_UNREACHABLE if f.state == orphans.UNREACHABLE else
             EXIT_USAGE if f.state == orphans.NO_POOL else
             EXIT_ORPHANS if f.orphan else views_mod.EXIT_OK for f in findings]
    return max(codes or [views_mod.EXIT_OK])


def orphans_table(findings):
    """The findings as aligned columns under a header."""
    def progress(f):
        if f.bytes is None:
            return '-'
        return '%s / %s' % (views_mod.human_size(f.bytes),
                            views_mod.human_size(f.total))

    rows = [('POOL', 'IMAGE', 'STATE', 'BYTES/TOTAL', 'AGE', 'ACTION')]
    rows += [(f.pool, '-' if f.image is None else orphans.printable(f.image),
              f.state, progress(f),
              '-' if f.age_s is None else views_mod.human_duration(f.age_s),
              orphans.action(f)) for f in findings]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return '\n'.join('  '.join(cell.ljust(width)
                               for cell, width in zip(row, widths)) +
                     '  ' + row[5] for row in rows)


def cmd_orphans(args, settings):
    targets = glance_config.orphan_targets(args, settings)
    findings, counted = find_orphans(targets, settings, args.stall_after,
                                     args.ceph_timeout)
    findings.sort(key=lambda f: (f.pool, f.image is not None, f.image))
    if args.json:
        if findings:
            print('\n'.join(f.to_json() for f in findings))
    else:
        if findings:
            print(orphans_table(findings) + '\n')
        print(orphans.summary(findings, counted))
        removal = orphans.removal_text(findings)
        if removal:
            print('\n' + removal)
    return orphans_exit_code(findings)


# --- Command line ----------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is our 'stalled'."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, '%s: error: %s\n' % (self.prog, message))


def _seconds(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must not be negative')
    return value


def _interval(text):
    value = _seconds(text)
    if value < 0.01:
        raise argparse.ArgumentTypeError('must be at least 0.01')
    return value


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
             '%s/ when they exist' % (glance_config.DEFAULT_CONFIG_FILE,
                                      glance_config.DEFAULT_CONFIG_DIR))
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
    common.add_argument('--stall-after', type=_seconds, default=60.0,
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
        prog='glance-progress', epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Show the progress of glance image uploads into\n'
                    'progress_rbd stores, as published to memcached.\n'
                    'orphans: partial uploads left in Ceph (exit codes: '
                    'orphans --help).')
    parser.add_argument('--version', action='version',
                        version='%(prog)s ' + _version())
    subs = parser.add_subparsers(dest='command', metavar='COMMAND')
    subs.required = True

    show = subs.add_parser(
        'show', parents=[common], epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='print the state of uploads once',
        description='Print the state, size, progress, average rate, ETA\n'
                    'and age of the upload of each image.')
    show.add_argument('image_ids', nargs='+', metavar='IMAGE_ID')
    show.add_argument(
        '--json', action='store_true',
        help='one JSON object per record and line, with the fields '
             'image_id, backend, state, bytes, total, percent, '
             'rate_bytes_per_s, eta_s, age_s, started_at, updated_at, '
             'reason, error')
    show.set_defaults(func=cmd_show)

    watch = subs.add_parser(
        'watch', parents=[common], epilog=EXIT_HELP,
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
    watch.add_argument('image_ids', nargs='+', metavar='IMAGE_ID')
    watch.add_argument('--interval', type=_interval, default=1.0,
                       metavar='S', help='seconds between polls (default: 1)')
    watch.add_argument('--timeout', type=_seconds, metavar='S',
                       help='stop after S seconds (exit 5); default: never')
    watch.add_argument(
        '--wait-start', type=_seconds, default=30.0, metavar='S',
        help='how long an image may have no record before it is unknown: '
             'watching may start before the upload (default: 30)')
    watch.set_defaults(func=cmd_watch)

    orphan = subs.add_parser(
        'orphans', parents=[orphans_common], epilog=ORPHANS_EXIT_HELP,
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
        '--ceph-timeout', type=_interval, default=30.0, metavar='S',
        help='give up on a Ceph operation after S seconds (default: 30)')
    orphan.add_argument(
        '--json', action='store_true',
        help='one JSON object per unfinished image (and per pool that '
             'could not be checked) and line, with the fields %s'
             % ', '.join(orphans.JSON_FIELDS))
    orphan.set_defaults(func=cmd_orphans)
    ceph_bindings.add_parser(subs)
    return parser


def main(argv=None):
    """Entry point of ``glance-progress``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if hasattr(args, 'run'):  # needs no glance configuration
        return args.run(args)
    try:
        settings = glance_config.settings_from_args(args)
        if args.backend is not None:
            settings.source_of(args.backend)
        return args.func(args, settings)
    except (glance_config.ConfigError, orphans.BindingsMissing) as e:
        sys.stderr.write('glance-progress: error: %s\n' % e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
