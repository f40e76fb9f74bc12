"""What every spec model shares: frozen, strict about unknown keys, strict about integers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Integers are strict (no "5" or 5.0 or true for a size); floats stay lax so that YAML's `1e-3`,
# which YAML 1.1 reads as a string, still means 0.001.
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Int = Annotated[int, Field(strict=True)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
