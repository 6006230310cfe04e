import sys

from got_data.cli import main

sys.exit(main())
