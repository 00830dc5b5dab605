"""``python -m backdrill``. A signal that arrives while the CLI is still being imported
exits 130/143 at once (nothing has started); main() then installs the real handlers.
``os._exit``, not ``sys.exit``: a SystemExit raised inside an import (pydantic building a
model class, say) can be turned into another exception and exit 1."""

import os
import signal


def _early_exit(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _early_exit)
signal.signal(signal.SIGINT, _early_exit)

from backdrill.cli.app import run  # noqa: E402

run()
