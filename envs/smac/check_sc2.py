"""Is the StarCraft II backend ready? Names exactly what is missing: smacv2, the game, version 4.10, the SMAC maps.

    python -m envs.smac.check_sc2

Exit status 0 when everything is there, 1 otherwise; docs/install.md has the steps. SMAC's README warns that
results are not always comparable between game versions (its paper used 4.6.2, build 69232); its install
instructions, on-policy (MAPPO) and pymarl2 name 4.10, build 75689, which this check expects. Another build runs,
and the analysis never pools results of different game versions.
"""
from __future__ import annotations

import argparse
import sys

from envs.smac.maps import MAPS
from envs.smac.sc2 import installed_builds, map_file, maps_folder, sc2_root, smacv2_release

SMAC_BUILD, SMAC_VERSION = "Base75689", "4.10"


def smacv2_found() -> tuple[bool, str]:
    """Whether smacv2 (and the pysc2 it runs on) imports, and what it is or why not."""
    try:
        import smacv2.env  # noqa: F401
    except ImportError as err:
        return False, str(err)
    release = smacv2_release()
    return True, f"smacv2 {release['version'] or '(version unknown)'}" + \
        (f" at commit {release['commit'][:12]}" if release["commit"] else "") + f", from {release['path']}"


def problems() -> tuple[list[str], list[str]]:
    """What is there and what is missing, a sentence each."""
    found, missing = [], []
    ok, what = smacv2_found()
    (found if ok else missing).append(what if ok else f"smacv2 ({what}): pip install -e '.[sc2]'")
    root = sc2_root()
    if not (root / "Versions").is_dir():
        missing.append(f"StarCraft II at {root} (no Versions/ folder there; install the game, or set SC2PATH to "
                       "the folder that holds Versions/ and Maps/)")
        return found, missing
    builds = installed_builds(root)
    if SMAC_BUILD in builds:
        newest = builds[-1]
        found.append(f"StarCraft II {SMAC_VERSION} ({SMAC_BUILD}) at {root}" +
                     ("" if newest == SMAC_BUILD else f"; but {newest} is newer and is the one smacv2 runs: remove it"))
    else:
        missing.append(f"StarCraft II {SMAC_VERSION} (Versions/{SMAC_BUILD}); found {', '.join(builds) or 'no build'} "
                       f"in {root / 'Versions'}")
    absent = [name for name in sorted(MAPS) if not map_file(root, name).is_file()]
    if absent:
        missing.append(f"{len(absent)} SMAC map(s) in {maps_folder(root)}: {', '.join(absent)}")
    else:
        found.append(f"the {len(MAPS)} SMAC maps in {maps_folder(root)}")
    return found, missing


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m envs.smac.check_sc2", description=__doc__.split("\n")[0]).parse_args(argv)
    found, missing = problems()
    for line in found:
        print(f"ok: {line}")
    for line in missing:
        print(f"missing: {line}")
    if missing:
        print("The StarCraft II backend is not ready; docs/install.md has the steps. --backend sim needs none of this.")
        return 1
    print("StarCraft II backend ready: python -m suites.run <suite> --backend sc2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
