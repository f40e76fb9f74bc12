"""What every spec model shares: frozen, strict about unknown keys, strict about integers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Integers are strict (no "5" or 5.0 or true for a size); floats stay lax so that a quoted "1e-3"
# still means 0.001. Every integer fits in torch's int64.
INT64_MAX = 2**63 - 1
PositiveInt = Annotated[int, Field(strict=True, gt=0, le=INT64_MAX)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
Int = Annotated[int, Field(strict=True, ge=-INT64_MAX - 1, le=INT64_MAX)]
# Seeds feed random, numpy (which takes 32 bits) and torch alike.
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SpecModel(BaseModel):
    # No inf or nan: `lr: .inf` is a typo, never a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)
