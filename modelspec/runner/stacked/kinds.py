"""Each optimizer's update on stacked tensors (R, *shape), with every number per run.

An update mirrors torch's single-tensor step (`torch/optim/<name>.py`, `_single_tensor_<name>`)
operation by operation, chosen to round the same: `x.add(y, alpha=a)` is a fused multiply-add, and so
is `torch.addcmul(x, y, a)`; `x.addcdiv(y, z, value=v)` rounds `v * y` first, so `addcdiv(x, y * v, z)`
does too. Numbers torch computes as Python floats (bias corrections, step sizes) are computed here in
float64 and rounded once to the tensors' dtype, as torch rounds a Python scalar. An update is pure: it
returns the new parameter and state, so a masked run can keep its old ones.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor


def col(h: Tensor, like: Tensor) -> Tensor:
    """A per-run number (R,) as (R, 1, 1, ...) in `like`'s dtype, to broadcast against it."""
    return h.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def mask(h: Tensor, like: Tensor) -> Tensor:
    """A per-run condition (R,) as (R, 1, 1, ...) against `like`."""
    return h.view(-1, *([1] * (like.dim() - 1)))


def _decay(p, g, h, decoupled: bool):
    """Weight decay: into the gradient (`grad.add(p, alpha=wd)`) or, decoupled, on the parameter
    (`p.mul_(1 - lr * wd)`, the factor a Python float in torch, so float64 here)."""
    if decoupled:
        return p * col(1 - h["lr"] * h["weight_decay"], p), g
    return p, torch.addcmul(g, p, col(h["weight_decay"], p))


def _moments(st, g, beta1, beta2):
    """Adam's two running averages, as torch's `exp_avg.lerp_(g, 1 - b1)` and
    `exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)` round them."""
    exp_avg = torch.lerp(st["exp_avg"], g, col(1 - beta1, g))
    exp_avg_sq = torch.addcmul(st["exp_avg_sq"] * col(beta2, g), g * col(1 - beta2, g), g)
    return exp_avg, exp_avg_sq


class Kind:
    """One optimizer: its torch class, its state and its update."""

    torch_name: ClassVar[str]
    STATE: ClassVar[tuple[str, ...]] = ()  # state tensors shaped like the parameter
    SCALARS: ClassVar[tuple[str, ...]] = ("step",)  # state numbers, one per run: (R,) float32
    FLAGS: ClassVar[tuple[str, ...]] = ("maximize",)  # pick a branch of the update: equal in a pack
    # Numbers whose being zero (or not) picks a branch in torch: zero in every run or in none.
    ZERO_BRANCHES: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        params = inspect.signature(getattr(torch.optim, cls.torch_name)).parameters
        return {k: p.default for k, p in params.items() if k != "params"}

    @classmethod
    def state_names(cls, flags: dict[str, Any], hyper: dict[str, Tensor]) -> tuple[str, ...]:
        return cls.STATE

    @classmethod
    def fresh(cls, p: Tensor, flags: dict[str, Any], hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        """The state before the first step: zeros, and each run's step count at 0."""
        state = {k: torch.zeros_like(p) for k in cls.state_names(flags, hyper)}
        return state | {k: torch.zeros(p.shape[0], device=p.device) for k in cls.SCALARS}

    @classmethod
    def torch_state(cls, st: dict[str, Tensor], i: int, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        """Run i's state of one parameter as torch holds it ({} before the first step, as torch's
        lazy state is); the step counts 0-dim on the CPU, as torch keeps them."""
        if st["step"][i] == 0:
            return {}
        return {k: st[k][i].clone().cpu() for k in cls.SCALARS} | {
            k: st[k][i].clone() for k in st if k not in cls.SCALARS
        }

    @classmethod
    def from_torch(cls, saved: dict[str, Tensor], fresh: dict[str, Tensor]) -> dict[str, Any]:
        """One run's slot from torch's state of one parameter; what torch lacks stays fresh."""
        return {k: saved.get(k, v) for k, v in fresh.items()}


class SGD(Kind):
    torch_name = "SGD"
    STATE = ("momentum_buffer",)
    FLAGS = ("nesterov", "maximize")

    @staticmethod
    def update(p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        p, g = _decay(p, g, h, decoupled=False)
        m = col(h["momentum"], p)
        # A run without momentum keeps no buffer in torch; with its (1 - dampening) taken as 1 the
        # buffer is exactly its gradient, so runs with and without momentum share a pack.
        damp = torch.where(h["momentum"] == 0, 1.0, 1 - h["dampening"])
        buf = torch.addcmul(st["momentum_buffer"] * m, g, col(damp, p))
        buf = torch.where(mask(st["step"] == 0, p), g, buf)  # torch starts the buffer at the gradient
        d = torch.addcmul(g, buf, m) if flags["nesterov"] else buf
        return {"param": torch.addcmul(p, d, col(-h["lr"], p)), "momentum_buffer": buf}

    @classmethod
    def torch_state(cls, st, i, hyper):
        # torch's SGD keeps no step, and no buffer at all without momentum.
        if hyper["momentum"][i] == 0 or st["step"][i] == 0:
            return {}
        return {"momentum_buffer": st["momentum_buffer"][i].clone()}

    @classmethod
    def from_torch(cls, saved, fresh):
        # Only a saved buffer tells that the run has stepped; the count itself is ours.
        return {"momentum_buffer": saved.get("momentum_buffer", fresh["momentum_buffer"]),
                "step": torch.tensor(float("momentum_buffer" in saved))}


class Adam(Kind):
    torch_name = "Adam"
    STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    FLAGS = ("amsgrad", "maximize", "decoupled_weight_decay")
    DECOUPLED: ClassVar[bool | None] = None  # None: the `decoupled_weight_decay` flag says

    @classmethod
    def state_names(cls, flags, hyper):
        return cls.STATE if flags["amsgrad"] else cls.STATE[:2]

    @classmethod
    def update(cls, p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        decoupled = cls.DECOUPLED if cls.DECOUPLED is not None else flags["decoupled_weight_decay"]
        p, g = _decay(p, g, h, decoupled)
        beta1, beta2 = h["betas"][:, 0], h["betas"][:, 1]
        exp_avg, exp_avg_sq = _moments(st, g, beta1, beta2)
        # Bias correction is per run: each run has its own betas and, once masked, its own count.
        step_size = h["lr"] / (1 - beta1**step)
        bc2_sqrt = (1 - beta2**step).sqrt()
        out = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if flags["amsgrad"]:
            second = out["max_exp_avg_sq"] = torch.maximum(st["max_exp_avg_sq"], exp_avg_sq)
        denom = second.sqrt() / col(bc2_sqrt, p) + col(h["eps"], p)
        return out | {"param": torch.addcdiv(p, exp_avg * col(-step_size, p), denom)}


class AdamW(Adam):
    torch_name = "AdamW"
    FLAGS = ("amsgrad", "maximize")
    DECOUPLED = True


class RMSprop(Kind):
    torch_name = "RMSprop"
    STATE = ("square_avg", "momentum_buffer", "grad_avg")
    FLAGS = ("centered", "maximize")
    # With momentum torch divides into a buffer and then scales by lr; without, it scales first.
    ZERO_BRANCHES = ("momentum",)

    @classmethod
    def state_names(cls, flags, hyper):
        names = ["square_avg"] + ["momentum_buffer"] * bool(hyper["momentum"][0] > 0)
        return tuple(names + ["grad_avg"] * flags["centered"])

    @staticmethod
    def update(p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        p, g = _decay(p, g, h, decoupled=False)
        alpha = h["alpha"]
        out = {"square_avg": torch.addcmul(st["square_avg"] * col(alpha, p), g * col(1 - alpha, p), g)}
        if flags["centered"]:
            out["grad_avg"] = torch.lerp(st["grad_avg"], g, col(1 - alpha, p))
            avg = torch.addcmul(out["square_avg"], out["grad_avg"], out["grad_avg"], value=-1).sqrt()
        else:
            avg = out["square_avg"].sqrt()
        avg = avg + col(h["eps"], p)
        if "momentum_buffer" in st:
            out["momentum_buffer"] = torch.addcdiv(st["momentum_buffer"] * col(h["momentum"], p), g, avg)
            return out | {"param": torch.addcmul(p, out["momentum_buffer"], col(-h["lr"], p))}
        return out | {"param": torch.addcdiv(p, g * col(-h["lr"], p), avg)}


class Adagrad(Kind):
    torch_name = "Adagrad"
    STATE = ("sum",)

    @classmethod
    def fresh(cls, p, flags, hyper):
        # torch fills the sum with each run's initial_accumulator_value, and creates its state
        # eagerly (in the constructor), so there is a state to convert even before a step.
        state = super().fresh(p, flags, hyper)
        return state | {"sum": torch.ones_like(p) * col(hyper["initial_accumulator_value"], p)}

    @classmethod
    def torch_state(cls, st, i, hyper):
        return {"step": st["step"][i].clone().cpu(), "sum": st["sum"][i].clone()}

    @staticmethod
    def update(p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        p, g = _decay(p, g, h, decoupled=False)
        clr = h["lr"] / (1 + (step - 1) * h["lr_decay"])
        total = torch.addcmul(st["sum"], g, g)
        std = total.sqrt() + col(h["eps"], p)
        return {"sum": total, "param": torch.addcdiv(p, g * col(-clr, p), std)}


class Adadelta(Kind):
    torch_name = "Adadelta"
    STATE = ("square_avg", "acc_delta")

    @staticmethod
    def update(p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        p, g = _decay(p, g, h, decoupled=False)
        rho, eps = h["rho"], col(h["eps"], p)
        square_avg = torch.addcmul(st["square_avg"] * col(rho, p), g * col(1 - rho, p), g)
        delta = (st["acc_delta"] + eps).sqrt() / (square_avg + eps).sqrt() * g
        acc_delta = torch.addcmul(st["acc_delta"] * col(rho, p), delta * col(1 - rho, p), delta)
        return {"square_avg": square_avg, "acc_delta": acc_delta,
                "param": torch.addcmul(p, delta, col(-h["lr"], p))}


class RAdam(Kind):
    torch_name = "RAdam"
    STATE = ("exp_avg", "exp_avg_sq")
    FLAGS = ("maximize", "decoupled_weight_decay")

    @staticmethod
    def update(p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        p, g = _decay(p, g, h, flags["decoupled_weight_decay"])
        beta1, beta2 = h["betas"][:, 0], h["betas"][:, 1]
        exp_avg, exp_avg_sq = _moments(st, g, beta1, beta2)
        bc1, bc2 = 1 - beta1**step, 1 - beta2**step
        # The variance rectification, per run: each run leaves the warm-up (rho_t > 5) at its own step.
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bc2
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)).abs().sqrt()
        plain = exp_avg / col(bc1, p) * col(h["lr"], p)
        # torch's `bc2 ** 0.5 / t` is `t.reciprocal() * bc2 ** 0.5` (Tensor.__rtruediv__)
        adaptive = (exp_avg_sq.sqrt() + col(h["eps"], p)).reciprocal() * col(bc2.sqrt(), p)
        update = torch.where(mask(rho_t > 5, p), plain * adaptive * col(rect, p), plain)
        return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "param": p - update}


class NAdam(Kind):
    torch_name = "NAdam"
    STATE = ("exp_avg", "exp_avg_sq")
    SCALARS = ("step", "mu_product")
    FLAGS = ("maximize", "decoupled_weight_decay")

    @classmethod
    def fresh(cls, p, flags, hyper):
        return super().fresh(p, flags, hyper) | {"mu_product": torch.ones(p.shape[0], device=p.device)}

    @staticmethod
    def update(p, g, st, h, flags, step):
        g = -g if flags["maximize"] else g
        p, g = _decay(p, g, h, flags["decoupled_weight_decay"])
        beta1, beta2, lr = h["betas"][:, 0], h["betas"][:, 1], h["lr"]
        bc2 = 1 - beta2**step
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * h["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * h["momentum_decay"]))
        # torch keeps the product of the mus as a float32 tensor: multiply in float32, as it does.
        mu_product = (st["mu_product"] * mu.float()).double()
        exp_avg, exp_avg_sq = _moments(st, g, beta1, beta2)
        denom = (exp_avg_sq / col(bc2, p)).sqrt() + col(h["eps"], p)
        p = torch.addcdiv(p, g * col(-lr * (1.0 - mu) / (1.0 - mu_product), p), denom)
        p = torch.addcdiv(p, exp_avg * col((-lr * mu_next) / (1.0 - mu_product * mu_next), p), denom)
        return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "mu_product": mu_product.float(), "param": p}


KINDS: dict[str, type[Kind]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
    "adagrad": Adagrad, "adadelta": Adadelta, "nadam": NAdam, "radam": RAdam,
}
