"""Fixtures of the end-to-end tests: each test gets its own DDS domain, rclpy Context and node process.

Run with `make ros-test` (or, after `source tools/ros/env.sh`: `"$DINOSEG_ROS_PYTHON" -m pytest tests/ros
-p no:cacheprovider`). Domain ids: a random base per run plus a counter, in 1..101; each id is held with a lock
file in the temp dir for the test's duration, so parallel runs on one machine pick different ids. Discovery
stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST). When a test fails, the logs of the node
processes it started are printed.
"""

import fcntl
import itertools
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)

from harness import RosEnv  # noqa: E402

_BASE = random.SystemRandom().randrange(101)
_COUNTER = itertools.count()
_LOCK_DIR = Path(tempfile.gettempdir())


def _take_domain():
    """(domain id, held lock file): the next free id after the run's base."""
    for _ in range(101):
        domain = 1 + (_BASE + next(_COUNTER)) % 101
        f = open(_LOCK_DIR / f"dinoseg-ros-test-domain-{domain}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return domain, f
        except OSError:
            f.close()
    raise RuntimeError("no free ROS_DOMAIN_ID in 1..101 (other test runs hold them all)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def ros(request, tmp_path):
    """The test's `RosEnv` (harness.py); node processes are killed and, on failure, their logs printed."""
    domain, lock = _take_domain()
    env = RosEnv(domain, tmp_path)
    try:
        yield env
    finally:
        try:
            env.close()
        finally:
            reports = [getattr(request.node, f"rep_{w}", None) for w in ("setup", "call")]
            failed = any(r is not None and r.failed for r in reports)
            if failed:
                for i, p in enumerate(env.procs):
                    print(f"\n===== dinoseg_node #{i} (domain {domain}): {' '.join(p.args)}")
                    print(f"----- exit {p.proc.returncode}; stdout:\n{p.stdout()}\n----- stderr:\n{p.stderr()}")
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
