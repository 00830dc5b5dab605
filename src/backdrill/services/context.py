"""What every service needs: the config, the repository, the run id and a progress
reporter. Built once by the CLI's root callback (hatch's application object)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from backdrill.config.model import Config
from backdrill.runtime.progress import NullReporter, Reporter
from backdrill.storage import Storage


@dataclass
class RunContext:
    config: Config
    storage: Storage
    run_id: str
    reporter: Reporter = field(default_factory=NullReporter)
    host: str = field(default_factory=socket.gethostname)
