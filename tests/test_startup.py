"""`zoo status` starts with what it needs only: each module below cost it milliseconds."""

from __future__ import annotations

import subprocess
import sys

from zoo.state.home import Home

NOT_FOR_STATUS = (
    "hashlib",  # the roster cache's key is a zlib checksum (zlib comes with typer)
    "socket",  # leases name the host with os.uname()
    "secrets",  # temporary names from os.urandom
    "concurrent.futures",  # the helper fsync threads start on the first note kept
    "zoo.roster.check",  # schedules import the cron check when they check a cron
    "zoo.state.journal",
)


def test_status_imports_nothing_it_does_not_use(home: Home) -> None:
    code = (
        "import sys; sys.argv = ['zoo', 'status', '--home', sys.argv[1]]\n"
        "import zoo.cli.app\n"
        "try:\n    zoo.cli.app.main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(set({NOT_FOR_STATUS!r}) & set(sys.modules)))\n"
    )
    # the first run writes the roster cache; the second is the one people meet
    subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True, check=True)
    out = subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "[]"
