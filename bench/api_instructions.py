"""Instructions per /api/v2 call, counted by valgrind: a figure that does not move with the
machine's load, for comparing two versions of the code on a shared machine.

    .venv/bin/python bench/api_instructions.py [--calls balance,status] [--repeat 30]
        [--parallel 2]

It seeds the same database as bench/api_v2.py (`panel_api_bench`: one customer, 5,000 services,
1,000 orders; DEBUG off), then runs each call --repeat times in-process through Django's test
client (a form body, gzip accepted, as bench/api_v2.py's --profile does) under valgrind's
callgrind, counting only the instructions of the loop of calls (itertools.starmap's, named with
--toggle-collect): not Python's start, Django's set-up or the warm-up calls. The count is that
of the panel's process alone, in user space: PostgreSQL's and Redis's work, and the kernel's
(system calls, the network), are not in it; bench/api_v2.py --profile gives PostgreSQL's CPU
time. Between two runs of the same code the counts differ by about 0.2 %. The ceiling (the bare
Django JSON view of bench/api_v2.py) is counted too: it is the test client's and the
middleware's share of every call.

Needs valgrind (Debian: `apt-get install valgrind`). A call takes about a minute and a half
(valgrind runs the process some 50 times slower); --parallel runs that many at once.
"""

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import api_v2  # noqa: E402  (after the path is set)

WARM_UP = 20


def child(seeded_file: str, name: str, repeat: int) -> None:
    """Inside valgrind: set up Django, warm up, then the counted loop of `repeat` calls."""
    import django

    django.setup()
    from urllib.parse import urlencode

    from django.test import Client

    seeded = json.loads(Path(seeded_file).read_text())
    _, path, data, headers = next(c for c in api_v2.scenarios(seeded) if c[0] == name)
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    extra.setdefault("HTTP_ACCEPT_ENCODING", "gzip")
    body, form = urlencode(data, doseq=True), "application/x-www-form-urlencoded"
    client = Client(HTTP_HOST="127.0.0.1")

    def call() -> None:
        response = client.post(path, body, content_type=form, **extra)
        head = api_v2._head(response, response.content)  # the answer's start, gzip or not
        assert response.status_code == 200 and b'"error"' not in head, head

    for _ in range(WARM_UP):
        call()
    list(itertools.starmap(call, [()] * repeat))  # the only loop callgrind counts


def count(seeded_file: str, name: str, repeat: int) -> float:
    """Instructions per call of `name`, from callgrind's total over the counted loop."""
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=starmap_next",
                f"--callgrind-out-file={scratch}/callgrind.out",
                sys.executable,
                __file__,
                "--child",
                seeded_file,
                name,
                str(repeat),
            ],
            cwd=ROOT,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        sys.exit(f"{name}: valgrind failed\n{run.stderr[-2000:]}")
    if int(found[1]) == 0:  # a Python built without its symbols: no starmap_next to count in
        sys.exit(f"{name}: callgrind counted nothing (is {sys.executable} stripped?)")
    return int(found[1]) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="", help="comma-separated words, as bench/api_v2.py")
    parser.add_argument("--repeat", type=int, default=30, help="counted calls of each")
    parser.add_argument("--parallel", type=int, default=2, help="valgrind runs at once")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        child(opts.child[0], opts.child[1], int(opts.child[2]))
        return
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if shutil.which("valgrind") is None:
        sys.exit("bench/api_instructions.py needs valgrind (Debian: apt-get install valgrind)")
    api_v2.prepare_environment(debug=False)
    import django

    django.setup()
    seeded = api_v2.seed(5000, 1000)
    calls = [c[0] for c in api_v2.selected(api_v2.scenarios(seeded), opts.calls)]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as seeded_file:
        json.dump(seeded, seeded_file)
        seeded_file.flush()
        with ThreadPoolExecutor(max(1, opts.parallel)) as pool:
            counts = list(pool.map(lambda n: count(seeded_file.name, n, opts.repeat), calls))
    api_v2.purge_broker()
    print(f"\ninstructions per call (callgrind, {opts.repeat} calls each, DEBUG=false)\n")
    print("| call | instructions | more than the ceiling |\n| --- | ---: | ---: |")
    for name, per_call in zip(calls, counts, strict=True):
        print(f"| {name} | {per_call / 1000:,.0f} k | {(per_call - counts[0]) / 1000:,.0f} k |")


if __name__ == "__main__":
    main()
