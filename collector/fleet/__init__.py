"""Fleet: signed firmware releases for the boxes (commands: ``collector/cli/firmware.py``).

The release key signs offline; the collector only relays signed releases and
checks them with the box's own verifier (``firmware.release``). The format is
``docs/firmware-updates.md``.
"""
