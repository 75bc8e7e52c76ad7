import sys

from airrec.cli import main

sys.exit(main())
