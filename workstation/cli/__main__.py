"""`python -m workstation.cli`: the headless command without the launcher."""

import sys

from workstation.cli import main

if __name__ == "__main__":
    sys.exit(main())
