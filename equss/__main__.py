import sys

from equss.cli import main

sys.exit(main())
