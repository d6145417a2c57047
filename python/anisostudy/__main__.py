"""The `study` command (`python -m anisostudy …`, or the `study` script
that installing the package puts beside the interpreter)."""

import sys

from . import _native


def main() -> None:
    sys.exit(_native.main([sys.argv[0], *sys.argv[1:]]))


if __name__ == "__main__":
    main()
