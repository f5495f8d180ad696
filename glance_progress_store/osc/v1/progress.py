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

"""``openstack image progress show`` and ``openstack image progress list``.

Both read glance's ``/v2/images/{id}/progress`` through
:class:`glance_progress_store.osc.http.ProgressClient`; the values are
the endpoint's, so ``-f json`` gives what a portal would read.
"""

from concurrent import futures
import logging

from cliff import columns
from osc_lib.command import command
from osc_lib import exceptions

from glance_progress_store.osc import http
from glance_progress_store.osc import wait
from glance_progress_store.read import states
from glance_progress_store.read import views

LOG = logging.getLogger(__name__)


class BackendsColumn(columns.FormattableColumn):
    """multi-store's ``backends``: a line per backend in a table, the
    endpoint's objects with ``-f json`` or ``-f yaml``."""

    def human_readable(self):
        return '\n'.join(
            '%s: %s' % (name, views.bar_info(views.from_fields(body)))
            for name, body in sorted((self._value or {}).items()))

    def machine_readable(self):
        return self._value


def _client(command_):
    return command_.app.client_manager.image_progress


class ShowProgress(command.ShowOne):
    _description = 'Show the upload progress of an image'

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('image', metavar='<image>',
                            help='Image to show (name or ID)')
        parser.add_argument(
            '--backend', metavar='<backend>',
            help='Only the record of this store (multi-store glance)')
        parser.add_argument(
            '--wait', action='store_true',
            help='Follow the upload until it is stored, failed or stalled '
                 '(a bar on a terminal, a line per change otherwise, on '
                 'stderr), then show it.\n'
                 + states.exit_help(wait.WAIT_CODES).rstrip('\n')
                 + '\nWithout --wait the exit code is 0 once shown.')
        parser.add_argument(
            '--interval', metavar='<seconds>', type=float, default=2.0,
            help='--wait: seconds between two polls (default: 2)')
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=float, default=None,
            help='--wait: give up after this many seconds (default: never)')
        return parser

    def take_action(self, parsed_args):
        client = _client(self)
        image_id = client.find_image(parsed_args.image)
        self.exit_code = states.EXIT_OK
        if parsed_args.wait:
            body, self.exit_code = wait.until_final(
                client, image_id, self.app.stderr, parsed_args.backend,
                parsed_args.interval, parsed_args.timeout)
        else:
            body = client.progress(image_id, parsed_args.backend)
        names = list(body)
        data = [BackendsColumn(body[n]) if n == 'backends' else body[n]
                for n in names]
        return names, data

    def run(self, parsed_args):
        # cliff's ShowOne answers 0 once shown; --wait has its own codes
        super().run(parsed_args)
        return self.exit_code


_COLUMNS = (('ID', 'image_id'), ('Name', 'name'),
            ('Image Status', 'image_status'), ('Backend', 'backend'),
            ('State', 'state'), ('Percent', 'percent'))
_LONG = (('Bytes', 'bytes'), ('Total', 'total'),
         ('Rate (B/s)', 'rate_bytes_per_s'), ('ETA (s)', 'eta_s'),
         ('Age (s)', 'age_s'), ('Reason', 'reason'), ('Owner', 'owner'))


# ``list``: images whose progress is asked at the same time. A few, so
# that a long list does not wait for one answer after another, and not
# one per image, so that the list never holds every worker of a
# glance-api (glance's own uWSGI configuration runs four).
PARALLEL = 4
# The state of a row whose progress glance could not give (this command's
# own: never a record's), with why in its reason.
UNAVAILABLE = 'unavailable'
# The exit status of a list with such a row, as osc's commands on
# several items exit 1 when one of them failed.
EXIT_SOME_UNAVAILABLE = 1


class ListProgress(command.Lister):
    _description = ('List the uploads in flight (images %s) with their '
                    'progress' % ', '.join(http.UPLOADING_IMAGE_STATUSES))
    _epilog = ('An image whose progress glance could not give (memcached '
               'down, an error of glance) is listed with the state %s, why '
               'in its reason (--long) and on stderr; the exit status is '
               'then %d, else 0.' % (UNAVAILABLE, EXIT_SOME_UNAVAILABLE))

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--all-projects', action='store_true',
            help='Every image glance shows you (an admin: all), not only '
                 'those of your project')
        parser.add_argument('--long', action='store_true',
                            help='List additional fields in output')
        return parser

    def take_action(self, parsed_args):
        client = _client(self)
        filters = {'status': 'in:' + ','.join(http.UPLOADING_IMAGE_STATUSES)}
        if not parsed_args.all_projects:
            project = client.project_id()
            if project is None:
                raise exceptions.CommandError(
                    'your project is not known (--os-auth-type none?): '
                    'use --all-projects')
            filters['owner'] = project
        wanted = _COLUMNS + (_LONG if parsed_args.long else ())
        images = client.images(**filters)
        self.unavailable = 0
        rows = []
        # keystoneauth's session may be shared by threads; map keeps the
        # images' order whatever order the answers come in
        with futures.ThreadPoolExecutor(PARALLEL) as pool:
            answers = list(pool.map(lambda image: _progress(client, image),
                                    images))
        for image, (records, error) in zip(images, answers):
            if error is not None:
                self.unavailable += 1
                LOG.error('No upload progress of image %s: %s',
                          image['id'], error)
            for record in records:
                record = dict(record, name=image.get('name'),
                              owner=image.get('owner'))
                rows.append(tuple(record.get(key) for _, key in wanted))
        return [title for title, _ in wanted], rows

    def run(self, parsed_args):
        # cliff's Lister answers 0 once listed: a row that could not be
        # read is listed, then said in the exit status
        super().run(parsed_args)
        return EXIT_SOME_UNAVAILABLE if self.unavailable else states.EXIT_OK


def _progress(client, image):
    """(records to list, error) of one image: no record if it went away;
    one ``unavailable`` record, and why, if glance could not say."""
    try:
        return _records(client.progress(image['id'])), None
    except http.NotFound:
        LOG.debug('image %s went away', image['id'])
        return [], None
    except http.NoProgressEndpoint:
        raise  # the whole list's error, said once
    except exceptions.CommandError as e:
        return [{'image_id': image['id'], 'image_status': image.get('status'),
                 'state': UNAVAILABLE, 'reason': str(e)}], str(e)


def _records(body):
    """One record per backend in multi-store, else the image's own."""
    return [b for _, b in sorted((body.get('backends') or {}).items())] or [
        body]
