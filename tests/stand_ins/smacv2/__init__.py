"""A stand-in for smacv2 (tests only): ``smacv2.env.StarCraft2Env`` with smacv2's API and a toy battle in place of
StarCraft II. Put ``tests/stand_ins`` first on ``sys.path`` (and ``SC2PATH`` at a folder with ``Versions/``) and the
StarCraft II backend runs on it, exactly where it would import smacv2."""
