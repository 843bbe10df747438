"""``python -m providers.sandbox --port 8765 --db var/sandbox.sqlite3``: run the sandbox provider."""

import sys

from providers.sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
