import sys

from edgeft.cli import main

sys.exit(main())
