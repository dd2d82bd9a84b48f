"""Run one controller app with os-ken (os-ken 4 ships no ``osken-manager``)::

    python -m wirelab.controllers.run wirelab.controllers.learning_switch_app \\
        --listen 127.0.0.1:6653 --config app.json

The lab starts it inside its switch namespace (wirelab.lab.openflow), so 127.0.0.1 is
that namespace's loopback, never the host's.  It runs until stopped (SIGTERM).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wirelab.controllers.run")
    ap.add_argument("app", help="module holding the os-ken app, e.g. wirelab.controllers.partition_app")
    ap.add_argument("--listen", default="127.0.0.1:6653", help="OpenFlow address:port (default %(default)s)")
    ap.add_argument("--config", type=Path, help="the app's configuration, a JSON object")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Plain threads, no eventlet monkey-patching; must be set before os-ken's hub loads.
    os.environ.setdefault("OSKEN_HUB_TYPE", "native")
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    from os_ken.controller import controller  # noqa: F401  (registers the ofp-* options)

    from wirelab.controllers import ofadapter
    if args.config is not None:
        ofadapter.CONFIG.update(json.loads(args.config.read_text()))
    cfg.CONF(args=["--ofp-listen-host", host, "--ofp-tcp-listen-port", port],
             project="os_ken", default_config_files=[])
    AppManager.run_apps([args.app])
    return 0


if __name__ == "__main__":
    sys.exit(main())
