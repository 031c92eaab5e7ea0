import sys

from edgekd.cli import main

sys.exit(main())
