"""The paper's Flatland tasks and how one ``RailEnv`` is built for them with flatland-rl 4.3.

Settings reproduce jbr-ai-labs/mamba@2c97258 ``env/flatland/params.py`` (``SeveralAgents``,
``PackOfAgents``, ``LotsOfAgents``; shared verbatim by aravindvenu7/MABL) and ``env/flatland/Flatland.py``:
sparse rails without grid mode, 2 rails between cities, 4 rails (2 pairs) per city, all trains at speed 1,
malfunctions lasting 20-50 steps, trains removed at their target. The official ``--env_name 15_agents``
built 20 trains; we name the task by what it is (``flatland/20_agents``).

flatland 2.2.2 let every train depart at step 0 and ended episodes after
``int(8 * (width + height + n_agents / n_cities))`` steps (cities actually placed). flatland 4.3 draws
timetables with staggered departures and much shorter limits instead, so :class:`Flatland2Timetable`
restores the 2.2.2 behaviour through 4.3's ``timetable_generator`` hook.

Every episode is a fresh ``RailEnv`` seeded from its environment's seed and its episode number
(:func:`build_episode`), so an episode does not depend on what happened in the previous one and can be
built ahead of time, in another process, and handed over pickled (``envs/flatland/batched.py``).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

from envs.errors import UsageError
from envs.seeding import child_seed

CITY_PADDING = 2  # sparse_rail_generator: city radius = rail pairs + 2 (flatland/envs/rail_generators.py)


@dataclass(frozen=True)
class FlatlandTask:
    width: int
    height: int
    n_agents: int
    n_cities: int
    malfunction_rate: float  # expected malfunctions per train per step
    min_malfunction: int = 20
    max_malfunction: int = 50
    max_rails_between_cities: int = 2
    max_rail_pairs_in_city: int = 2  # flatland 2.2.2's max_rails_in_city=4, counted in pairs in 4.3

    def max_feasible_cities(self) -> int:
        """How many cities ``sparse_rail_generator`` can fit (same arithmetic as flatland 4.3)."""
        cell = 2 * (self.max_rail_pairs_in_city + CITY_PADDING + 1)
        return ((self.height - 2) // cell) * ((self.width - 2) // cell)

    def station_tracks(self) -> int:
        return self.n_cities * 2 * self.max_rail_pairs_in_city

    def validate(self) -> None:
        """Refuse settings flatland would silently degrade or fail on, saying what to change."""
        for name in ("width", "height", "n_agents", "n_cities", "max_rail_pairs_in_city", "max_rails_between_cities"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UsageError(f"flatland {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.n_cities < 2:
            raise UsageError(f"flatland needs at least 2 cities, got n_cities={self.n_cities}")
        if not 0.0 <= self.malfunction_rate <= 1.0:
            raise UsageError(f"malfunction_rate is a per-step probability in [0, 1], got {self.malfunction_rate}")
        if not 0 < self.min_malfunction <= self.max_malfunction:
            raise UsageError(f"malfunction durations must satisfy 0 < min <= max, got "
                             f"{self.min_malfunction}..{self.max_malfunction}")
        fit = self.max_feasible_cities()
        if fit < self.n_cities:
            cell = 2 * (self.max_rail_pairs_in_city + CITY_PADDING + 1)
            raise UsageError(
                f"a {self.width}x{self.height} grid fits at most {fit} cities of this size (each needs a "
                f"{cell}x{cell} block plus a 1-cell border), but n_cities={self.n_cities}: enlarge the grid "
                f"or reduce n_cities")
        if self.n_agents > self.station_tracks():
            raise UsageError(
                f"{self.n_agents} trains need more station tracks than {self.n_cities} cities with "
                f"{self.max_rail_pairs_in_city} rail pairs provide ({self.station_tracks()}): add cities or "
                f"rail pairs, or reduce n_agents")

    def episode_limit(self, cities_placed: int | None = None) -> int:
        """flatland 2.2.2's ``_max_episode_steps`` (4 * 2 * (w + h + n / cities))."""
        return int(8 * (self.width + self.height + self.n_agents / (cities_placed or self.n_cities)))


# jbr-ai-labs/mamba@2c97258 env/flatland/params.py: height x width as listed there. ``2_agents`` is its
# ``FewAgents`` (not reachable from the official command line): our small task for debugging and CI.
TASKS: dict[str, FlatlandTask] = {
    "2_agents": FlatlandTask(width=25, height=35, n_agents=2, n_cities=2, malfunction_rate=1 / 50),
    "5_agents": FlatlandTask(width=35, height=35, n_agents=5, n_cities=3, malfunction_rate=1 / 100),
    "10_agents": FlatlandTask(width=35, height=35, n_agents=10, n_cities=4, malfunction_rate=1 / 150),
    "20_agents": FlatlandTask(width=60, height=40, n_agents=20, n_cities=6, malfunction_rate=1 / 200),
}


def get_task(name: str, **overrides) -> FlatlandTask:
    """A task by name, optionally with fields changed (``n_agents=8``); validated either way."""
    if name not in TASKS:
        raise UsageError(f"unknown Flatland task {name!r}; valid tasks: "
                         f"{', '.join('flatland/' + t for t in TASKS)}")
    fields = {f.name for f in dataclasses.fields(FlatlandTask)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UsageError(f"unknown Flatland setting(s) {', '.join(unknown)}; valid settings: {', '.join(sorted(fields))}")
    task = dataclasses.replace(TASKS[name], **overrides)
    task.validate()
    return task


@dataclass(frozen=True)
class Flatland2Timetable:
    """A 4.3 ``timetable_generator``: everyone departs at 0, the 2.2.2 episode limit, no arrival deadline.
    A class rather than a closure so that a ``RailEnv`` holding it can be pickled."""
    task: FlatlandTask

    def __call__(self, agents, distance_map, agents_hints, np_random=None):
        from flatland.envs.timetable_utils import Timetable

        limit = self.task.episode_limit(len(agents_hints["city_positions"]) if agents_hints else None)
        return Timetable(earliest_departures=[[0, None] for _ in agents],
                         latest_arrivals=[[None, limit] for _ in agents], max_episode_steps=limit)


def build_rail_env(task: FlatlandTask, seed: int, obs_builder):
    """One flatland-rl 4.3 ``RailEnv`` for ``task``; every ``reset()`` draws a new rail from ``seed``'s stream."""
    from flatland.envs.line_generators import sparse_line_generator
    from flatland.envs.malfunction_generators import MalfunctionParameters, ParamMalfunctionGen
    from flatland.envs.rail_env import RailEnv
    from flatland.envs.rail_generators import sparse_rail_generator

    return RailEnv(
        width=task.width, height=task.height, number_of_agents=task.n_agents,
        rail_generator=sparse_rail_generator(max_num_cities=task.n_cities, grid_mode=False,
                                             max_rails_between_cities=task.max_rails_between_cities,
                                             max_rail_pairs_in_city=task.max_rail_pairs_in_city),
        line_generator=sparse_line_generator(),  # no speed map: every train at speed 1.0
        malfunction_generator=ParamMalfunctionGen(MalfunctionParameters(
            task.malfunction_rate, task.min_malfunction, task.max_malfunction)),
        timetable_generator=Flatland2Timetable(task),
        obs_builder_object=obs_builder, remove_agents_at_target=True, random_seed=seed,
    )


def build_episode(task: FlatlandTask, env_seed: int, episode: int, obs_builder=None):
    """Episode ``episode`` of the environment seeded ``env_seed``: its ``RailEnv``, reset and ready to
    step, and the texts of the warnings its generators gave.

    Trains are made ready to depart (flatland 2.2.2: every train may leave at step 0) and the distance
    map is computed here, so that an episode built in another process arrives complete. By default the
    caller builds the observations (``DummyObservationBuilder``); the throughput benchmark passes a
    tree observation builder to measure raw flatland on the same episodes."""
    from flatland.core.env_observation_builder import DummyObservationBuilder
    from flatland.envs.step_utils.states import TrainState

    env = build_rail_env(task, child_seed(env_seed, episode), obs_builder or DummyObservationBuilder())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env.reset()
    with warnings.catch_warnings():  # "not recommended to set the state": deliberate, see above
        warnings.simplefilter("ignore")
        for agent in env.agents:
            agent.state = TrainState.READY_TO_DEPART
    env.distance_map.get()
    return env, [str(w.message) for w in caught]
