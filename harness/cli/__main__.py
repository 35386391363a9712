"""``python -m serve_chaos.harness.cli`` runs the CLI."""

import sys

from serve_chaos.harness.cli import main

sys.exit(main())
