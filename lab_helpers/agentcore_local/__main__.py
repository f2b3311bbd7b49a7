"""``python -m lab_helpers.agentcore_local serve ...``: the older spelling of ``python -m lab_helpers.emulator``."""

from lab_helpers.emulator.__main__ import main

if __name__ == "__main__":
    main()
