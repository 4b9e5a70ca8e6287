"""``python -m glm`` runs the ``glm`` command."""

import sys

from glm.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
