"""StarCraft II unit data used by the SMAC simulator.

Numbers come from the SC2 API's unit data (as BurnySc2/sc2-techtree ``data/data.json`` lists it) and the
``*_RL`` unit definitions inside the SMAC map files. Time is in game loops at
*Normal* speed (16 loops = 1 game second, 8 loops = 1 SMAC step); speeds are distance per game second.
SMAC's normalisation tables (``unit_max_cooldown``, ``unit_max_shield``, smac/env/starcraft2/
starcraft2.py:848-881) are kept beside the real values because observations and state use them.
"""
from __future__ import annotations

from dataclasses import dataclass

LOOPS_PER_SECOND = 16.0


@dataclass(frozen=True)
class UnitType:
    name: str
    hp: float
    shield: float
    armor: float
    speed: float  # Normal game units per game second
    radius: float
    light: bool
    armored: bool
    biological: bool
    air: bool = False
    damage: float = 0.0  # per attack
    attacks: int = 1  # attacks per shot (Zealot: 2)
    bonus_damage: float = 0.0
    bonus_vs: str = ""  # "light" or "armored"
    weapon_range: float = 0.0  # edge to edge, SC2 convention
    weapon_period: float = 0.0  # game loops between shots
    hits_ground: bool = False
    hits_air: bool = False
    hp_regen: float = 0.0  # per game second
    healer: bool = False
    splash: str = ""  # "line": Thermal Lances (colossus); "burst": Volatile Burst (baneling), see SPLASH below
    cliff_walker: bool = False  # the colossus's mover crosses cliffs
    smac_max_cooldown: float = 15.0  # starcraft2.py:848-861 (default 15)

    @property
    def has_weapon(self) -> bool:
        return self.damage > 0


def _s(period_seconds: float) -> float:
    return period_seconds * LOOPS_PER_SECOND


ZERG_REGEN = 0.2734  # Hydralisk_RL LifeRegenRate (map data); stock Zerg units use the same rate

UNITS: dict[str, UnitType] = {
    u.name: u
    for u in (
        UnitType("marine", 45, 0, 0, 2.25, 0.375, True, False, True, damage=6, weapon_range=5,
                 weapon_period=_s(0.8608), hits_ground=True, hits_air=True, smac_max_cooldown=15),
        UnitType("marauder", 125, 0, 1, 2.25, 0.5625, False, True, True, damage=10, bonus_damage=10,
                 bonus_vs="armored", weapon_range=6, weapon_period=_s(1.5), hits_ground=True,
                 smac_max_cooldown=25),
        # Medivac_RL: speed 2.75 (stock 2.5; MMM2's UnitData.xml); heals instead of attacking.
        UnitType("medivac", 150, 0, 1, 2.75, 0.75, False, True, False, air=True, healer=True,
                 smac_max_cooldown=200),
        UnitType("stalker", 80, 80, 1, 2.9531, 0.625, False, True, False, damage=13, bonus_damage=5,
                 bonus_vs="armored", weapon_range=6, weapon_period=_s(1.8701), hits_ground=True,
                 hits_air=True, smac_max_cooldown=35),
        UnitType("zealot", 100, 50, 1, 2.25, 0.5, True, False, True, damage=8, attacks=2,
                 weapon_range=0.1, weapon_period=_s(1.2), hits_ground=True, smac_max_cooldown=22),
        # Hydralisk_RL: 80 HP (stock 90).
        UnitType("hydralisk", 80, 0, 0, 2.25, 0.625, True, False, True, damage=12, weapon_range=5,
                 weapon_period=_s(0.825), hits_ground=True, hits_air=True, hp_regen=ZERG_REGEN,
                 smac_max_cooldown=10),
        UnitType("zergling", 35, 0, 0, 2.953125, 0.375, True, False, True, damage=5,
                 weapon_range=0.1, weapon_period=_s(0.696), hits_ground=True, hp_regen=ZERG_REGEN,
                 smac_max_cooldown=11),
        # Colossus_RL (2c_vs_64zg; "Colosus_RL" in 1c3s5z): stock values; radius 1. ThermalLances 10 x 2,
        # +5 vs light, range 7, period 1.5 s, ground only; it hits a line across the target (LANCE_* below).
        UnitType("colossus", 200, 150, 1, 2.25, 1.0, False, True, False, damage=10, attacks=2, bonus_damage=5,
                 bonus_vs="light", weapon_range=7, weapon_period=_s(1.5), hits_ground=True, splash="line",
                 cliff_walker=True, smac_max_cooldown=24),
        # Baneling(_RL): 30 HP, speed 2.5, radius 0.375, not light (map data). Volatile Burst: 16 (+19 vs light)
        # to every enemy ground unit within BURST_RADIUS, range 0.25; the baneling dies as it bursts, and a
        # baneling killed bursts too. The period only keeps a cooldown defined; a baneling never fires twice.
        UnitType("baneling", 30, 0, 0, 2.5, 0.375, False, False, True, damage=16, bonus_damage=19,
                 bonus_vs="light", weapon_range=0.25, weapon_period=_s(1.0), hits_ground=True, hp_regen=ZERG_REGEN,
                 splash="burst", smac_max_cooldown=1),
        UnitType("spinecrawler", 300, 0, 2, 0.0, 1.125, False, True, True, damage=25, bonus_damage=5,
                 bonus_vs="armored", weapon_range=7, weapon_period=_s(1.850), hits_ground=True,
                 hp_regen=ZERG_REGEN, smac_max_cooldown=15),
    )
}

# SMAC's max shield table (starcraft2.py:874-881); used only to normalise shield features.
SMAC_MAX_SHIELD = {"stalker": 80.0, "zealot": 50.0, "colossus": 150.0}

SHIELD_REGEN_DELAY = 10 * LOOPS_PER_SECOND  # loops without damage before shields regenerate
SHIELD_REGEN_RATE = 2.0  # shield per game second
MEDIVAC_HEAL_RATE = 9.0  # HP per game second (12.6 at Faster speed)
MEDIVAC_HP_PER_ENERGY = 3.0
MEDIVAC_ENERGY_REGEN = 0.5625  # per game second
MEDIVAC_START_ENERGY, MEDIVAC_MAX_ENERGY = 50.0, 200.0
MEDIVAC_HEAL_RANGE = 4.0
MIN_DAMAGE = 0.5  # SC2 never lets armour reduce an attack below 0.5

# Splash. Thermal Lances (effects ThermalLancesForward/Reverse): two sweeps, each searching 11 circles of
# radius 0.15 at offsets -1.25..1.25 across the target's position, hit every enemy ground unit they touch
# once per sweep (the target too), so a unit on the line takes both attacks: a segment of half-length 1.25
# perpendicular to the shot, thickened by 0.15 (SMAClite: a 2.8 x 0.3 rectangle). Volatile Burst: radius 2.2
# around the baneling; banelings do no friendly damage (Liquipedia, "Baneling (Legacy of the Void)").
LANCE_HALF_LENGTH, LANCE_RADIUS = 1.25, 0.15
BURST_RADIUS = 2.2
