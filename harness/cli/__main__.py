"""``python -m harness.cli`` runs the CLI."""

import sys

from harness.cli import main

sys.exit(main())
