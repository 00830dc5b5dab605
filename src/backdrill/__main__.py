"""``python -m backdrill``. A signal that arrives while the CLI is still being imported
exits 130/143 at once (nothing has started); main() then installs the real handlers."""

import signal
import sys


def _early_exit(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _early_exit)
signal.signal(signal.SIGINT, _early_exit)

from backdrill.cli.app import run  # noqa: E402

run()
