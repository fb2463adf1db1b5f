"""Profiles: `full` (the released LivePortrait weights) and `sample` (the same code, tiny seeded weights).

The profile in force comes from the argument, else `$TALKINGHEAD_PROFILE`, else `full`. Tests, CI and the notebooks
under `pytest --nbval` use `sample`: every shape, file format and code path is the real one, but images are noise.
The network configs for both live in `talkinghead.liveportrait.config`, in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

PROFILE_ENV = "TALKINGHEAD_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str

    @property
    def is_sample(self) -> bool:
        return self.name == "sample"


PROFILES = {
    "full": Profile("full", "the released LivePortrait weights (KwaiVGI/LivePortrait), downloaded once"),
    "sample": Profile("sample", "the same networks at reduced widths with seeded random weights: "
                                "every shape and file is real, but images are NOISE"),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """Resolve a profile by name (argument, else `$TALKINGHEAD_PROFILE`, else 'full')."""
    if isinstance(name, Profile):
        return name
    name = name or os.environ.get(PROFILE_ENV) or "full"
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)} "
                         f"(argument or ${PROFILE_ENV})") from None
