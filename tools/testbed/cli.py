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

"""The test bed's command line: ``python3 tools/testbed COMMAND``.

::

    python3 tools/testbed install [demo|tests]   # Debian packages (root)
    .venv/bin/python tools/testbed link-bindings # rados/rbd into a venv
    eval "$(python3 tools/testbed up --workdir /tmp/tb [--with-mgr])"
    python3 tools/testbed status --workdir /tmp/tb
    python3 tools/testbed down --workdir /tmp/tb
    python3 tools/testbed skyline-console        # patched console's static

``up`` starts Ceph and memcached only; ``tools/glance_stack.py up`` adds
glance-api.  Both record what they started in the same state file, and
either ``down`` stops it.
"""

import argparse
import sys
import time

from testbed import packages
from testbed import procs
from testbed import roots
from testbed import skyline_console
from testbed import stack


def refuse_if_running(workdir):
    """Exit with a message if a recorded stack of ``workdir`` still runs,
    so that `up` never orphans it."""
    if stack.running(workdir):
        sys.exit("a stack is up in %s; run `down --workdir %s` first"
                 % (workdir, workdir))


def _cmd_up(args):
    refuse_if_running(args.workdir)
    started = time.monotonic()
    with stack.LocalStack(
            args.workdir, memstore_bytes=int(args.memstore_gib * 2**30),
            with_mgr=args.with_mgr) as local:
        local.keep()
    print("testbed up in %s in %.1f s: Ceph %s, memcached %s"
          % (local.workdir, time.monotonic() - started, local.ceph.mon_addr,
             local.memcached.address), file=sys.stderr)
    print("\n".join(local.export_lines()))


def _cmd_down(args):
    return stack.down_main(args.workdir)


def _cmd_status(args):
    state = stack.load_state(args.workdir)
    if state is None:
        sys.exit("nothing running in %s" % args.workdir)
    for process in state["processes"]:
        alive = "running" if stack.owned(process) else "GONE"
        print("%-10s pid %-8d %s" % (process["name"], process["pid"], alive))
    print(procs.run(
        ["ceph", "-c", state["conf_path"], "--connect-timeout", "5", "-s"],
        check=False, timeout=15))


def _cmd_install(args):
    packages.ensure_packages(packages.SETS[args.set], takes={
        "demo": "1-3 min", "tests": "2-5 min"}[args.set])
    # `python3.X -m venv` needs Debian's python3.X-venv, for the Python
    # the bindings are built for: checked here, before the venv is made,
    # so that venv never fails half way.
    python = packages.bindings_python() or sys.executable
    packages.ensure_packages(packages.venv_packages(python), takes="10-30 s")


def _cmd_python(args):
    python = packages.bindings_python()
    if python is None:
        sys.exit("python3-rbd is not installed: run `python3 tools/testbed "
                 "install` first")
    print(python)


def _cmd_link_bindings(args):
    print(packages.link_bindings())


def _cmd_skyline_console(args):
    built = skyline_console.build(
        say=lambda text: print(text, file=sys.stderr, flush=True))
    print(built.static)


def _cmd_root(args):
    print(roots.ensure_root(args.suite))


def _cmd_leg(args):
    return roots.leg(args.suite, args.pytest_args)


def _cmd_fresh(args):
    if not args.argv:
        sys.exit("fresh: which of README's commands? (tools/demo, "
                 "tools/run-tests ...)")
    return roots.fresh(args.suite, args.argv)


def _cmd_in_root(args):
    binds = [("/", args.host_at)] if args.host_at else []
    return roots.run_in_root(args.suite, args.argv, binds=binds)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="testbed", description="Throw-away one-node Ceph cluster and "
        "memcached servers on loopback.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="boot ceph + memcached, print export lines")
    up.add_argument("--workdir", required=True)
    up.add_argument("--with-mgr", action="store_true",
                    help="also run a ceph-mgr (needed for pool quotas)")
    up.add_argument("--memstore-gib", type=float, default=12)
    up.set_defaults(func=_cmd_up)
    install = sub.add_parser(
        "install", help="install the Debian packages (root): the demo's "
        "(Ceph, memcached) or the tests' (also PHP's memcached client, "
        "Prometheus, Chromium), and Python's venv when it lacks it")
    install.add_argument("set", nargs="?", choices=sorted(packages.SETS),
                         default="tests", help="default: tests")
    install.set_defaults(func=_cmd_install)
    sub.add_parser("python", help="the interpreter Debian's python3-rbd is "
                   "built for, by its name (python3.X)"
                   ).set_defaults(func=_cmd_python)
    sub.add_parser("link-bindings",
                   help="put only Debian's rados/rbd modules on this "
                        "interpreter's path (run it with the venv's python)"
                   ).set_defaults(func=_cmd_link_bindings)
    sub.add_parser("skyline-console",
                   help="skyline-console %s with contrib/skyline's patches, "
                   "built (cached) as the install guide says; prints its "
                   "static dir" % skyline_console.VERSION
                   ).set_defaults(func=_cmd_skyline_console)
    suites = sorted(roots.RELEASES)
    root = sub.add_parser("root", help="build (once) the Debian root of "
                          "another release; prints its path")
    root.add_argument("suite", choices=suites)
    root.set_defaults(func=_cmd_root)
    leg = sub.add_parser("leg", help="CI leg: unit, functional and an e2e "
                         "subset (Horizon's tests included) inside another "
                         "release's root")
    leg.add_argument("suite", choices=suites)
    leg.add_argument("pytest_args", nargs=argparse.REMAINDER)
    leg.set_defaults(func=_cmd_leg)
    fresh = sub.add_parser("fresh", help="one of README's commands "
                           "(tools/demo, tools/run-tests ...) on a fresh "
                           "machine: a minbase root of SUITE with only git, "
                           "ca-certificates and python3, a clone of HEAD, "
                           "the command run in it; the root is removed after")
    fresh.add_argument("suite", choices=roots.FRESH_SUITES)
    fresh.add_argument("argv", nargs=argparse.REMAINDER,
                       help="README's command and its arguments")
    fresh.set_defaults(func=_cmd_fresh)
    in_root = sub.add_parser("in-root", help="run a command in the root's "
                             "copy of this checkout (/proc, /sys, /dev "
                             "mounted, unmounted after)")
    in_root.add_argument("--host-at", metavar="PATH",
                         help="also bind this host's / at PATH in the root "
                         "(GPS_CEPH_DAEMON_ROOT=PATH: the host's Ceph)")
    in_root.add_argument("suite", choices=suites)
    in_root.add_argument("argv", nargs=argparse.REMAINDER)
    in_root.set_defaults(func=_cmd_in_root)
    for name, func, text in (
            ("down", _cmd_down, "stop what `up` started"),
            ("status", _cmd_status, "the recorded processes and ceph -s")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--workdir", required=True)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except RuntimeError as exc:
        sys.exit(str(exc))
