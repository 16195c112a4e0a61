import sys

from autosong.eval_cli import main

sys.exit(main())
