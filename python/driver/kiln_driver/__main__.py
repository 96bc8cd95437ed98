import sys

# `probe` must answer on an interpreter without a working torch, which the build modules behind .cli import.
if sys.argv[1:2] == ["probe"]:
    from .probe import main as probe

    sys.exit(probe(sys.argv[2:]))

from .cli import main

sys.exit(main())
