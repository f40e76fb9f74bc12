"""Each optimizer's update on stacked tensors (R, *shape), with every number per run.

An update mirrors torch's single-tensor step (`torch/optim/<name>.py`, `_single_tensor_<name>`)
operation by operation, chosen to round the same: `x.add(y, alpha=a)` is a fused multiply-add, and so
is `torch.addcmul(x, y, a)`; `x.addcdiv(y, z, value=v)` rounds `v * y` first, so `addcdiv(x, y * v, z)`
does too. Numbers torch computes as Python floats (bias corrections, step sizes) are computed here in
float64 and rounded once to the tensors' dtype, as torch rounds a Python scalar. An update is pure: it
returns the new parameter and state, so a masked run can keep its old ones.

An update is in two parts. `numbers` computes a step's per-run numbers (R,) from the
hyper-parameters and the step count; `apply` updates one stacked parameter with them. The parameters
of a network step together, so their counts are equal and one `Numbers` serves them all: a tiny
model's step is dozens of small operations on (R,) tensors per parameter otherwise, each costing
what an update of a whole weight does.
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


class Numbers:
    """A step's per-run numbers (R,) by name, each shaped against a stacked tensor once per dtype
    and rank (`col`, `mask`) however many parameters read it. `decays`: whether any run has a
    weight decay (torch adds none where it is 0, and nor does `_decay` then)."""

    def __init__(self, values: dict[str, Tensor], decays: bool):
        self.values, self.decays = values, decays
        self._shaped: dict[tuple, Tensor] = {}

    def __getitem__(self, name: str) -> Tensor:
        return self.values[name]

    def col(self, name: str, like: Tensor) -> Tensor:
        key = (name, like.dtype, like.dim())
        if key not in self._shaped:
            self._shaped[key] = col(self.values[name], like)
        return self._shaped[key]

    def mask(self, name: str, like: Tensor) -> Tensor:
        key = (name, None, like.dim())
        if key not in self._shaped:
            self._shaped[key] = mask(self.values[name], like)
        return self._shaped[key]


def _decay_numbers(h: dict[str, Tensor]) -> dict[str, Tensor]:
    """What `_decay` reads: the decay, and the factor of the decoupled one (`p.mul_(1 - lr * wd)`,
    the factor a Python float in torch, so float64 here)."""
    return {"weight_decay": h["weight_decay"], "decoupled_factor": 1 - h["lr"] * h["weight_decay"]}


def _decay(p: Tensor, g: Tensor, n: Numbers, decoupled: bool) -> tuple[Tensor, Tensor]:
    """Weight decay: into the gradient (`grad.add(p, alpha=wd)`) or, decoupled, on the parameter."""
    if not n.decays:
        return p, g
    if decoupled:
        return p * n.col("decoupled_factor", p), g
    return p, torch.addcmul(g, p, n.col("weight_decay", p))


def _beta_numbers(h: dict[str, Tensor]) -> dict[str, Tensor]:
    beta1, beta2 = h["betas"][:, 0], h["betas"][:, 1]
    return {"beta1": beta1, "beta2": beta2, "one_minus_beta1": 1 - beta1, "one_minus_beta2": 1 - beta2}


def _moments(st: dict[str, Tensor], g: Tensor, n: Numbers) -> tuple[Tensor, Tensor]:
    """Adam's two running averages, as torch's `exp_avg.lerp_(g, 1 - b1)` and
    `exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)` round them."""
    exp_avg = torch.lerp(st["exp_avg"], g, n.col("one_minus_beta1", g))
    exp_avg_sq = torch.addcmul(st["exp_avg_sq"] * n.col("beta2", g), g * n.col("one_minus_beta2", g), g)
    return exp_avg, exp_avg_sq


def _signed(g: Tensor, flags: dict[str, Any]) -> Tensor:
    return -g if flags["maximize"] else g


class Kind:
    """One optimizer: its torch class, its state and its update (`numbers`, then `apply`)."""

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

    @staticmethod
    def numbers(h: dict[str, Tensor], scalars: dict[str, Tensor], step: Tensor) -> dict[str, Tensor]:
        """The step's per-run numbers (R,): from the hyper-parameters `h`, the state numbers before
        the step (`scalars`, each (R,) as SCALARS names them) and the step count after it (float64)."""
        raise NotImplementedError

    @staticmethod
    def apply(p: Tensor, g: Tensor, st: dict[str, Tensor], n: Numbers, flags: dict[str, Any]) -> dict[str, Tensor]:
        """The new parameter ("param") and state tensors of one stacked parameter; a state number
        other than the step count (NAdam's "mu_product") is in `n` under its own name."""
        raise NotImplementedError

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
    def numbers(h, scalars, step):
        # A run without momentum keeps no buffer in torch; with its (1 - dampening) taken as 1 the
        # buffer is exactly its gradient, so runs with and without momentum share a pack.
        return _decay_numbers(h) | {
            "momentum": h["momentum"], "damp": torch.where(h["momentum"] == 0, 1.0, 1 - h["dampening"]),
            "first": scalars["step"] == 0, "neg_lr": -h["lr"]}

    @staticmethod
    def apply(p, g, st, n, flags):
        p, g = _decay(p, _signed(g, flags), n, decoupled=False)
        m = n.col("momentum", p)
        buf = torch.addcmul(st["momentum_buffer"] * m, g, n.col("damp", p))
        buf = torch.where(n.mask("first", p), g, buf)  # torch starts the buffer at the gradient
        d = torch.addcmul(g, buf, m) if flags["nesterov"] else buf
        return {"param": torch.addcmul(p, d, n.col("neg_lr", p)), "momentum_buffer": buf}

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

    @staticmethod
    def numbers(h, scalars, step):
        betas = _beta_numbers(h)
        # Bias correction is per run: each run has its own betas and, once masked, its own count.
        return _decay_numbers(h) | betas | {
            "neg_step_size": -(h["lr"] / (1 - betas["beta1"] ** step)),
            "bc2_sqrt": (1 - betas["beta2"] ** step).sqrt(), "eps": h["eps"]}

    @classmethod
    def apply(cls, p, g, st, n, flags):
        decoupled = cls.DECOUPLED if cls.DECOUPLED is not None else flags["decoupled_weight_decay"]
        p, g = _decay(p, _signed(g, flags), n, decoupled)
        exp_avg, exp_avg_sq = _moments(st, g, n)
        out = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if flags["amsgrad"]:
            second = out["max_exp_avg_sq"] = torch.maximum(st["max_exp_avg_sq"], exp_avg_sq)
        denom = second.sqrt() / n.col("bc2_sqrt", p) + n.col("eps", p)
        return out | {"param": torch.addcdiv(p, exp_avg * n.col("neg_step_size", p), denom)}


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
    def numbers(h, scalars, step):
        return _decay_numbers(h) | {"alpha": h["alpha"], "one_minus_alpha": 1 - h["alpha"], "eps": h["eps"],
                                    "momentum": h["momentum"], "neg_lr": -h["lr"]}

    @staticmethod
    def apply(p, g, st, n, flags):
        p, g = _decay(p, _signed(g, flags), n, decoupled=False)
        out = {"square_avg": torch.addcmul(st["square_avg"] * n.col("alpha", p), g * n.col("one_minus_alpha", p), g)}
        if flags["centered"]:
            out["grad_avg"] = torch.lerp(st["grad_avg"], g, n.col("one_minus_alpha", p))
            avg = torch.addcmul(out["square_avg"], out["grad_avg"], out["grad_avg"], value=-1).sqrt()
        else:
            avg = out["square_avg"].sqrt()
        avg = avg + n.col("eps", p)
        if "momentum_buffer" in st:
            out["momentum_buffer"] = torch.addcdiv(st["momentum_buffer"] * n.col("momentum", p), g, avg)
            return out | {"param": torch.addcmul(p, out["momentum_buffer"], n.col("neg_lr", p))}
        return out | {"param": torch.addcdiv(p, g * n.col("neg_lr", p), avg)}


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
    def numbers(h, scalars, step):
        return _decay_numbers(h) | {"neg_clr": -(h["lr"] / (1 + (step - 1) * h["lr_decay"])), "eps": h["eps"]}

    @staticmethod
    def apply(p, g, st, n, flags):
        p, g = _decay(p, _signed(g, flags), n, decoupled=False)
        total = torch.addcmul(st["sum"], g, g)
        std = total.sqrt() + n.col("eps", p)
        return {"sum": total, "param": torch.addcdiv(p, g * n.col("neg_clr", p), std)}


class Adadelta(Kind):
    torch_name = "Adadelta"
    STATE = ("square_avg", "acc_delta")

    @staticmethod
    def numbers(h, scalars, step):
        return _decay_numbers(h) | {"rho": h["rho"], "one_minus_rho": 1 - h["rho"], "eps": h["eps"],
                                    "neg_lr": -h["lr"]}

    @staticmethod
    def apply(p, g, st, n, flags):
        p, g = _decay(p, _signed(g, flags), n, decoupled=False)
        rho, one_minus_rho, eps = n.col("rho", p), n.col("one_minus_rho", p), n.col("eps", p)
        square_avg = torch.addcmul(st["square_avg"] * rho, g * one_minus_rho, g)
        delta = (st["acc_delta"] + eps).sqrt() / (square_avg + eps).sqrt() * g
        acc_delta = torch.addcmul(st["acc_delta"] * rho, delta * one_minus_rho, delta)
        return {"square_avg": square_avg, "acc_delta": acc_delta,
                "param": torch.addcmul(p, delta, n.col("neg_lr", p))}


class RAdam(Kind):
    torch_name = "RAdam"
    STATE = ("exp_avg", "exp_avg_sq")
    FLAGS = ("maximize", "decoupled_weight_decay")

    @staticmethod
    def numbers(h, scalars, step):
        betas = _beta_numbers(h)
        beta2 = betas["beta2"]
        bc2 = 1 - beta2**step
        # The variance rectification, per run: each run leaves the warm-up (rho_t > 5) at its own step.
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bc2
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)).abs().sqrt()
        return _decay_numbers(h) | betas | {"bc1": 1 - betas["beta1"] ** step, "lr": h["lr"], "eps": h["eps"],
                                            "bc2_sqrt": bc2.sqrt(), "rect": rect, "rectified": rho_t > 5}

    @staticmethod
    def apply(p, g, st, n, flags):
        p, g = _decay(p, _signed(g, flags), n, flags["decoupled_weight_decay"])
        exp_avg, exp_avg_sq = _moments(st, g, n)
        plain = exp_avg / n.col("bc1", p) * n.col("lr", p)
        # torch's `bc2 ** 0.5 / t` is `t.reciprocal() * bc2 ** 0.5` (Tensor.__rtruediv__)
        adaptive = (exp_avg_sq.sqrt() + n.col("eps", p)).reciprocal() * n.col("bc2_sqrt", p)
        update = torch.where(n.mask("rectified", p), plain * adaptive * n.col("rect", p), plain)
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
    def numbers(h, scalars, step):
        betas = _beta_numbers(h)
        beta1, lr = betas["beta1"], h["lr"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * h["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * h["momentum_decay"]))
        # torch keeps the product of the mus as a float32 tensor: multiply in float32, as it does.
        mu_product = (scalars["mu_product"] * mu.float()).double()
        return _decay_numbers(h) | betas | {
            "bc2": 1 - betas["beta2"] ** step, "eps": h["eps"], "mu_product": mu_product.float(),
            "grad_step": -lr * (1.0 - mu) / (1.0 - mu_product),
            "avg_step": (-lr * mu_next) / (1.0 - mu_product * mu_next)}

    @staticmethod
    def apply(p, g, st, n, flags):
        g = _signed(g, flags)
        p, g = _decay(p, g, n, flags["decoupled_weight_decay"])
        exp_avg, exp_avg_sq = _moments(st, g, n)
        denom = (exp_avg_sq / n.col("bc2", p)).sqrt() + n.col("eps", p)
        p = torch.addcdiv(p, g * n.col("grad_step", p), denom)
        p = torch.addcdiv(p, exp_avg * n.col("avg_step", p), denom)
        return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "mu_product": n["mu_product"], "param": p}


KINDS: dict[str, type[Kind]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
    "adagrad": Adagrad, "adadelta": Adadelta, "nadam": NAdam, "radam": RAdam,
}
