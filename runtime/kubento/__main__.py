import sys

from kubento.cli import main

sys.exit(main())
