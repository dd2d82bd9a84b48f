import sys

from wirelab.cli import main

sys.exit(main())
