"""What the rest of the suite knows about a task (``EnvSpec``) and a task family (``Family``), without
torch, so the analysis can read recorded specs and the registry loads without the simulators."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envs.base import MultiAgentEnv


@dataclass(frozen=True)
class Score:
    """A per-episode metric the analysis can score, and its scale: the analysis divides by ``scale`` to put
    it on rliable's [0, 1] range (performance profiles, optimality gap)."""

    metric: str  # as logged under eval/ and absolute/, e.g. "win_rate"
    scale: float
    label: str  # what figures and tables call it


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a task: what algorithms are built from and the analysis reads (every run records
    it in its config.json). Built by a :class:`Family`'s ``describe``, which fills in the family's fields."""

    task: str
    family: str  # the family's registry name, e.g. "smac"
    backend: str  # concrete backend, e.g. "sim"
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int
    metric: str  # the headline evaluation metric, e.g. "win_rate"
    scores: tuple[Score, ...]  # metrics the analysis may score, the headline first
    outcomes: tuple[tuple[str, str], ...]  # (info key, logged name) of per-episode outcomes, e.g. ("won", "win_rate")
    action_masks: bool  # actions become unavailable during episodes (world models then predict availability)
    benchmark: str  # what results are grouped and titled by: family and backend, e.g. "SMAC (simulator)"

    @classmethod
    def from_dict(cls, fields: dict) -> EnvSpec:
        """The inverse of ``dataclasses.asdict`` (as a JSON round trip leaves it)."""
        return cls(**{**fields, "scores": tuple(Score(**score) for score in fields["scores"]),
                      "outcomes": tuple(tuple(pair) for pair in fields["outcomes"])})


class Family(abc.ABC):
    """Everything the algorithms, suites and analysis know about one task family, in one place.

    Subclasses set the class attributes and implement the three methods; ``envs.FAMILIES`` registers the
    instance. Nothing outside ``envs/`` tests a family's name, except preset tables keyed by it."""

    name: str  # the task id prefix, e.g. "smac"
    title: str  # e.g. "SMAC"
    backends: dict[str, str]  # concrete backend -> how results call it; a one-backend family maps its own name
    metric: str
    scores: tuple[Score, ...]
    outcomes: tuple[tuple[str, str], ...]
    action_masks: bool

    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """Task names within the family (without the ``<family>/`` prefix)."""

    @abc.abstractmethod
    def spec(self, name: str, backend: str) -> EnvSpec:
        """The spec of a task with default options, without building an environment."""

    @abc.abstractmethod
    def make(self, name: str, backend: str, num_envs: int, device: str, seed: int, *,
             compile: bool = False, one_episode_each: bool = False, checked: bool = True, **options) -> MultiAgentEnv:
        """``num_envs`` batched environments. The runner's options, which every family takes: ``compile`` (run the
        step through ``torch.compile`` where the backend steps in torch; nothing otherwise), ``one_episode_each``
        (each environment plays one episode only: nothing to prepare for later ones) and ``checked`` (check every
        action against the available ones, raising a ValueError that names it; the runner turns it off once its
        policies are known to mask). ``options``: the family's own settings, documented on its ``make``."""

    def member_axis(self, backend: str) -> bool:
        """Whether ``make`` on ``backend`` takes a tuple of seeds, one per seed member, for a batch of
        ``num_envs`` = members x environments each (see ``envs/members.py``); otherwise members are stacked."""
        return False

    def choose_backend(self, requested: str, quiet: bool) -> str:
        """``requested`` ("auto" or one of ``backends``) made concrete; may print a one-line notice."""
        return next(iter(self.backends)) if requested == "auto" else requested

    def describe(self, name: str, backend: str, *, n_agents: int, obs_dim: int, state_dim: int, n_actions: int,
                 episode_limit: int) -> EnvSpec:
        """A task's spec from its layout, with the family's fields filled in."""
        return EnvSpec(task=f"{self.name}/{name}", family=self.name, backend=backend, n_agents=n_agents,
                       obs_dim=obs_dim, state_dim=state_dim, n_actions=n_actions, episode_limit=episode_limit,
                       metric=self.metric, scores=self.scores, outcomes=self.outcomes, action_masks=self.action_masks,
                       benchmark=self.benchmark(backend))

    def benchmark(self, backend: str) -> str:
        """What results on ``backend`` are titled, e.g. "SMAC (simulator)"; a one-backend family's title alone."""
        return self.title if len(self.backends) == 1 else f"{self.title} ({self.backends[backend]})"
