from airrec.cli import main
import sys
sys.exit(main())
