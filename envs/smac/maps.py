"""SMAC v1 scenario data: compositions, limits, spawn points, terrain.

Registry values follow ``map_param_registry`` (oxwhirl/smac smac/env/starcraft2/maps/smac_maps.py);
compositions, spawn points, enemy orders and pathable cells follow the SMAC ``.SC2Map`` files (their
``MapScript.galaxy`` triggers and pathing layers). Both backends (simulator and StarCraft II) read this table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAP_SIZE = 32

# Type order inside the unit-type one-hot, per SMAC ``map_type`` (starcraft2.py:1387-1420, 1634-1662).
# Allies are numbered by this order; enemies use the stock-id order, which differs on Protoss maps.
ALLY_TYPE_ORDER = {
    "marines": ("marine",),
    "stalkers_and_zealots": ("stalker", "zealot"),
    "MMM": ("marauder", "marine", "medivac"),
    "stalkers": ("stalker",),
    "hydralisks": ("hydralisk",),
    "zealots": ("zealot",),
    "colossus": ("colossus",),
    "colossi_stalkers_zealots": ("colossus", "stalker", "zealot"),
    "bane": ("baneling", "zergling"),
}
ENEMY_TYPE_BITS = {
    "stalkers_and_zealots": {"zealot": 0, "stalker": 1},  # stock ids 73, 74 (starcraft2.py:1392-1397)
    "MMM": {"marauder": 0, "marine": 1, "medivac": 2},
    "colossi_stalkers_zealots": {"colossus": 0, "stalker": 1, "zealot": 2},  # stock ids 4, 74, else (ENV:1389-1420)
    "bane": {"baneling": 0, "zergling": 1},  # stock id 9, else (ENV:1389-1420)
}


def _rows(ranges: dict[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Pathing grid ``[x, y]`` from ``{(y0, y1): (x0, x1)}`` inclusive ranges."""
    grid = np.zeros((MAP_SIZE, MAP_SIZE), dtype=bool)
    for (y0, y1), (x0, x1) in ranges.items():
        grid[x0 : x1 + 1, y0 : y1 + 1] = True
    return grid


TERRAIN = {
    # the cells of each map file's t3CellFlags layer with bit 0 clear
    "flat_band": _rows({(8, 23): (0, 31)}),
    "open": _rows({(0, 31): (0, 31)}),
    "octagon": _rows({(8, 9): (10, 19), (10, 17): (8, 21), (18, 19): (10, 19)}),
    "pentagon": _rows({(8, 19): (8, 19), (20, 21): (10, 17), (22, 23): (12, 15)}),
    # 2m_vs_1z and bane_vs_bane share this arena (their t3CellFlags layers are identical).
    "arena": _rows({(6, 7): (10, 21), (8, 9): (8, 23), (10, 21): (6, 25), (22, 23): (8, 23), (24, 25): (10, 21)}),
    # 2c_vs_64zg: a wall (y 12-13, x 4-27) between the zerglings' low ground and the colossi's plateau; the way
    # round is by the sides (x 0-3, 28-31) and up the ramps (x 4-6, 25-27).
    "ravine": _rows({(6, 7): (4, 27), (8, 9): (2, 29), (10, 11): (0, 31), (12, 13): (0, 3), (14, 15): (0, 31),
                     (16, 17): (2, 29), (18, 19): (8, 23)}) | _rows({(12, 13): (28, 31)}),
    "diagonal_band": _rows({(2, 3): (2, 7), (4, 7): (2, 11), (8, 11): (4, 15), (12, 15): (8, 19), (16, 17): (10, 19),
                            (18, 21): (14, 25), (22, 23): (16, 29), (24, 27): (20, 29), (28, 29): (22, 29)}),
    # corridor: the cliff-level-64 plateau of its t3SyncCliffLevel layer. The cell-flag
    # layer joins the two rooms by a single 2x2 block touching at corners only, which no unit with a
    # radius could cross; the plateau gives the ~6-cell diagonal neck seen on the minimap, where six
    # zealots can wall off the zerglings.
    "corridor": _rows({
        (30, 30): (19, 30), (29, 29): (18, 30), (28, 28): (17, 30), (27, 27): (16, 30),
        (26, 26): (15, 30), (25, 25): (14, 30), (24, 24): (13, 30), (23, 23): (12, 30),
        (17, 22): (11, 30), (16, 16): (12, 29), (15, 15): (12, 28), (14, 14): (11, 27),
        (13, 13): (10, 26), (12, 12): (1, 15), (11, 11): (1, 14), (10, 10): (1, 13),
        (4, 9): (1, 12), (3, 3): (1, 13), (1, 2): (1, 14),
    }),
}

# Where a colossus may walk: its Mover "Colossus" crosses cliffs (differences of cliff level) that stop other
# ground units, so the raised ground of ``t3SyncCliffLevel`` (level 64 and up, ramps included) is open to it,
# cliff faces included. Low ground (level 0) stays closed: the maps mark all of it unpathable.
CLIFF_TERRAIN = {
    "flat_band": _rows({(7, 24): (0, 31)}),
    "ravine": _rows({(5, 5): (3, 28), (6, 6): (2, 29), (7, 7): (1, 30), (8, 17): (0, 31), (18, 18): (1, 30),
                     (19, 19): (2, 29), (20, 20): (3, 28)}),
}


@dataclass(frozen=True)
class SmacMap:
    name: str
    allies: tuple[tuple[str, int], ...]  # in ally index order (type order, see ALLY_TYPE_ORDER)
    enemies: tuple[tuple[str, int], ...]  # in the map script's creation order
    limit: int
    a_race: str
    b_race: str
    unit_type_bits: int
    map_type: str
    terrain: str
    ally_spawn: tuple[float, float]
    enemy_spawn: tuple[float, float]
    attack_point: tuple[float, float] | None  # None: enemies hold still (2s_vs_1sc spine crawler)
    ally_spawn_2: tuple[float, float] | None = None  # 2s_vs_1sc, 2m_vs_1z: one unit at each point
    type_spawns: tuple[tuple[str, str, tuple[float, float]], ...] = ()  # (side, type, point): a group spawned elsewhere
    attack_allies: bool = False  # 2c_vs_64zg: the enemy's order targets the allied units, not a point

    @property
    def n_agents(self) -> int:
        return sum(n for _, n in self.allies)

    @property
    def n_enemies(self) -> int:
        return sum(n for _, n in self.enemies)

    @property
    def ally_types(self) -> list[str]:
        return [t for t, n in self.allies for _ in range(n)]

    @property
    def enemy_types(self) -> list[str]:
        return [t for t, n in self.enemies for _ in range(n)]

    @property
    def has_healer(self) -> bool:
        return self.map_type == "MMM"

    def spawn_point(self, side: str, unit_type: str) -> tuple[float, float]:
        """Where the map script creates units of ``unit_type`` of ``side`` ("ally" or "enemy")."""
        for s, t, point in self.type_spawns:
            if (s, t) == (side, unit_type):
                return point
        return self.ally_spawn if side == "ally" else self.enemy_spawn


_LINE = dict(terrain="flat_band", ally_spawn=(9.0, 16.0), enemy_spawn=(23.0, 16.0), attack_point=(9.0, 16.0))
_OPEN = dict(_LINE, terrain="open")
_SZ = dict(a_race="P", b_race="P", unit_type_bits=2, map_type="stalkers_and_zealots")
_MMM = dict(a_race="T", b_race="T", unit_type_bits=3, map_type="MMM")
_M = dict(a_race="T", b_race="T", unit_type_bits=0, map_type="marines")


def _marines(name, n_a, n_e, limit):
    return SmacMap(name, (("marine", n_a),), (("marine", n_e),), limit, **_M, **_LINE)


MAPS: dict[str, SmacMap] = {
    m.name: m
    for m in (
        _marines("3m", 3, 3, 60),
        _marines("8m", 8, 8, 120),
        _marines("5m_vs_6m", 5, 6, 70),
        _marines("10m_vs_11m", 10, 11, 150),
        _marines("27m_vs_30m", 27, 30, 180),
        _marines("25m", 25, 25, 150),
        _marines("8m_vs_9m", 8, 9, 120),
        SmacMap("2s3z", (("stalker", 2), ("zealot", 3)), (("stalker", 2), ("zealot", 3)), 120, **_SZ, **_LINE),
        SmacMap("3s5z", (("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 5)), 150, **_SZ, **_LINE),
        SmacMap("3s5z_vs_3s6z", (("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 6)), 170,
                **_SZ, **_LINE),
        SmacMap("MMM", (("marauder", 2), ("marine", 7), ("medivac", 1)),
                (("marine", 7), ("marauder", 2), ("medivac", 1)), 150, **_MMM, **_LINE),
        SmacMap("MMM2", (("marauder", 2), ("marine", 7), ("medivac", 1)),
                (("marine", 8), ("marauder", 3), ("medivac", 1)), 180, **_MMM, **_LINE),
        SmacMap("3s_vs_3z", (("stalker", 3),), (("zealot", 3),), 150, "P", "P", 0, "stalkers", **_OPEN),
        SmacMap("3s_vs_4z", (("stalker", 3),), (("zealot", 4),), 200, "P", "P", 0, "stalkers", **_OPEN),
        SmacMap("3s_vs_5z", (("stalker", 3),), (("zealot", 5),), 250, "P", "P", 0, "stalkers", **_OPEN),
        SmacMap("6h_vs_8z", (("hydralisk", 6),), (("zealot", 8),), 150, "Z", "P", 0, "hydralisks", "octagon",
                ally_spawn=(14.5998, 9.49), enemy_spawn=(14.41, 16.7597), attack_point=(14.5998, 9.49)),
        SmacMap("corridor", (("zealot", 6),), (("zergling", 24),), 400, "P", "Z", 0, "zealots", "corridor",
                ally_spawn=(19.0397, 19.1198), enemy_spawn=(27.91, 28.24), attack_point=(4.47, 4.3298)),
        SmacMap("2s_vs_1sc", (("stalker", 2),), (("spinecrawler", 1),), 300, "P", "Z", 0, "stalkers",
                "pentagon", ally_spawn=(11.1208, 10.338), ally_spawn_2=(16.976, 10.3662),
                enemy_spawn=(13.92, 20.0397), attack_point=None),
        # the zealot attack-moves to a random point between the two marines' points; we take the midpoint
        SmacMap("2m_vs_1z", (("marine", 2),), (("zealot", 1),), 150, "T", "P", 0, "marines", "arena",
                ally_spawn=(13.0, 12.0), ally_spawn_2=(19.0, 12.0), enemy_spawn=(16.0, 19.0), attack_point=(16.0, 12.0)),
        SmacMap("1c3s5z", (("colossus", 1), ("stalker", 3), ("zealot", 5)),
                (("colossus", 1), ("stalker", 3), ("zealot", 5)), 180, "P", "P", 3, "colossi_stalkers_zealots",
                **_LINE),
        SmacMap("bane_vs_bane", (("baneling", 4), ("zergling", 20)), (("zergling", 20), ("baneling", 4)), 200,
                "Z", "Z", 2, "bane", "arena", ally_spawn=(16.0, 11.0), enemy_spawn=(16.0, 21.0),
                attack_point=(16.0, 8.0),
                type_spawns=(("ally", "baneling", (16.0, 8.0)), ("enemy", "baneling", (16.0, 24.0)))),
        SmacMap("so_many_baneling", (("zealot", 7),), (("baneling", 32),), 100, "P", "Z", 0, "zealots",
                "diagonal_band", ally_spawn=(11.469, 12.0234), enemy_spawn=(27.91, 28.24), attack_point=(4.47, 4.3298)),
        SmacMap("2c_vs_64zg", (("colossus", 2),), (("zergling", 64),), 400, "P", "Z", 0, "colossus", "ravine",
                ally_spawn=(16.0, 16.0), enemy_spawn=(16.0, 9.0), attack_point=(16.0, 16.0), attack_allies=True),
    )
}

SUPER_HARD = ("3s5z_vs_3s6z", "6h_vs_8z", "MMM2", "27m_vs_30m", "corridor")


def get_map(name: str) -> SmacMap:
    if name not in MAPS:
        raise KeyError(f"unknown SMAC map {name!r}; valid maps: {', '.join(sorted(MAPS))}")
    return MAPS[name]
