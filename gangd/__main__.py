import sys

from gangd.cli import main

sys.exit(main())
