import sys

from slack_pii.cli import main

sys.exit(main())
