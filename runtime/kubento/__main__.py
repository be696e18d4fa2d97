import sys

from kubento._cli import main

sys.exit(main())
