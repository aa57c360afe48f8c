"""moto and the AWS-like proxy as separate processes on 127.0.0.1, for the benchmarks."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness.aws_proxy import ProxyControl  # noqa: E402


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "build" / "collections"), env.get("PYTHONPATH", "")])
    env["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    return env


def wait_for_port(port_file, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("{0} exited with {1}".format(process.args, process.returncode))
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.1)
    raise RuntimeError("{0} did not start within {1} s".format(process.args, timeout))


class Servers:
    """``with Servers(workdir, proxy_config) as servers``: moto and the proxy in front of it."""

    def __init__(self, workdir, proxy_config):
        self.workdir = Path(workdir)
        self.proxy_config = proxy_config
        self.processes = []

    def spawn(self, name, module, *args):
        port_file = self.workdir / (name + ".port")
        port_file.unlink(missing_ok=True)
        log = open(self.workdir / (name + ".log"), "w")
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port-file", str(port_file), *args],
            cwd=str(REPO),
            env=python_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return "http://127.0.0.1:{0}".format(wait_for_port(port_file, process))

    def __enter__(self):
        self.moto = self.spawn("moto", "tests.harness.moto_server")
        self.proxy = self.spawn(
            "proxy", "tests.harness.aws_proxy", "--upstream", self.moto, "--config", json.dumps(self.proxy_config)
        )
        self.control = ProxyControl(self.proxy)
        return self

    def __exit__(self, *exc):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def reset(self):
        """Empty moto and restart the proxy's counts and token buckets (settings kept)."""
        request = urllib.request.Request(self.moto + "/moto-api/reset", method="POST")
        urllib.request.urlopen(request).read()
        self.control.reset()
