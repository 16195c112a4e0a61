import sys

from autosong.generate_cli import main

sys.exit(main())
