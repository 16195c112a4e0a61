import sys

from autosong.pipeline_cli import main

sys.exit(main())
