# purpose: `python -m hwsim`: the whole hardware lab (printer+drawer, scanner, ZVT) until Ctrl-C.
import sys

from .lab import main

sys.exit(main())
