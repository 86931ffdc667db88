import sys

from course_utils.cli.main import main

sys.exit(main())
