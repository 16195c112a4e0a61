import sys

from autosong.train_cli import main

sys.exit(main())
