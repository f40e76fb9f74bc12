"""What every spec model shares: frozen, strict about unknown keys and about types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Every value is strict (the model config below): no "5" or 5.0 or true for a size, no true or "0.1"
# for a float (an int is a float). YAML's `1e-3` is a float already (see yaml_source). Every integer
# fits in torch's int64.
INT64_MAX = 2**63 - 1
PositiveInt = Annotated[int, Field(strict=True, gt=0, le=INT64_MAX)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
Int = Annotated[int, Field(strict=True, ge=-INT64_MAX - 1, le=INT64_MAX)]
# Seeds feed random, numpy (which takes 32 bits) and torch alike.
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SpecModel(BaseModel):
    # No inf or nan: `lr: .inf` is a typo, never a setting.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, strict=True, allow_inf_nan=False
    )
