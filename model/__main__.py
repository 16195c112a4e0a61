import sys

from model.generate_cli import main

sys.exit(main())
