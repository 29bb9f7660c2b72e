import sys

from safer_toolkit.cli import main

sys.exit(main())
