"""What every config model shares: the strict pydantic base and the pattern of a name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class _Model(BaseModel):
    # allow_inf_nan=False: no option anywhere accepts inf or nan (they pass every ge/le check and break at run time)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
