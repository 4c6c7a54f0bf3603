import sys

from maed.cli import main

sys.exit(main())
