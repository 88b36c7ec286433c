"""The default prompt suite: the study's five queries, kept as data in study.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str = "custom"


def study_prompts() -> tuple[Prompt, ...]:
    """The five study queries, in the study's order."""
    data = tomllib.loads(resources.files(__package__).joinpath("study.toml").read_text())
    return tuple(Prompt(**entry) for entry in data["prompts"])
