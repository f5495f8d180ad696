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

"""The local stack with a real glance-api, for people: `up` and `down`.

Boots Ceph, memcached and glance-api under uWSGI on loopback (the same
code as the demo and the end-to-end tests: testbed.stack.LocalStack) and
leaves them running; `down` stops them.  Stdlib only; glance runs in the
interpreter given as ``--python`` (default: this one), which needs
glance, pyuwsgi, this package and the Ceph bindings (``tools/setup-env
demo``, which ``tools/demo`` runs, or ``e2e``).

CLI::

    eval "$(.venv/bin/python tools/glance_stack.py up --workdir /tmp/gs)"
    .venv/bin/glance image-create --name demo --disk-format raw \\
        --container-format bare --file disk.raw
    .venv/bin/python tools/glance_stack.py down --workdir /tmp/gs
"""

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testbed import cli  # noqa: E402
from testbed import stack  # noqa: E402


def _cmd_up(args):
    cli.refuse_if_running(args.workdir)
    started = time.monotonic()
    local = stack.LocalStack(
        args.workdir, pools=(),
        memstore_bytes=int(args.memstore_gib * 2**30),
        glance=dict(mode=args.mode, driver=args.driver,
                    workers=args.workers, python=args.python))
    with local:
        local.keep()
    api = local.api
    print("glance-api %s (%s, %s, pools %s) up in %.1f s; log %s"
          % (api.url, args.mode, args.driver, ",".join(api.pools),
             time.monotonic() - started, api.log_path), file=sys.stderr)
    print("\n".join(local.export_lines()))
    glance = shlex.quote(os.path.join(os.path.dirname(args.python), "glance"))
    print("# %s image-create --name demo --disk-format raw "
          "--container-format bare --file FILE" % glance)
    print("# %s image-list" % glance)
    print("# %s %s down --workdir %s" % (
        shlex.quote(os.path.abspath(sys.executable)),
        shlex.quote(os.path.abspath(__file__)), shlex.quote(local.workdir)))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="boot Ceph, memcached and glance-api; "
                                   "print export lines for the glance CLI")
    up.add_argument("--workdir", required=True)
    up.add_argument("--mode", choices=("single", "multi"), default="single")
    up.add_argument("--driver", choices=("progress_rbd", "rbd"),
                    default="progress_rbd")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--memstore-gib", type=float, default=12)
    up.add_argument("--python", default=sys.executable,
                    help="interpreter with glance and pyuwsgi installed")
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", help="stop what `up` (or the demo's "
                                       "--keep) started")
    down.add_argument("--workdir", required=True)
    down.set_defaults(func=lambda args: stack.down_main(args.workdir))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RuntimeError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    sys.exit(main())
