"""Random augmentation batched on device-resident tensors: each transform against torchvision on the
same draws, the device path taken where it is exact, and an augmented run that resumes exactly."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from modelspec.data import prepare_data
from modelspec.load import loads_spec
from modelspec.runner import RunContext, train_run
from modelspec.spec.transforms import RandomCrop, RandomHorizontalFlip, RandomRotation

BATCH = torch.rand(6, 3, 10, 10, generator=torch.Generator().manual_seed(0))


def test_flip_crop_and_rotation_match_torchvision_sample_by_sample():
    generator = torch.Generator().manual_seed(1)
    flip = RandomHorizontalFlip(p=0.5)
    params = flip.draw(6, (3, 10, 10), generator)
    out = flip.apply(BATCH, params, torch.zeros(3))
    for x, flipped, y in zip(BATCH, params["flip"], out):
        assert torch.equal(y, F.horizontal_flip(x) if flipped else x)
    assert 0 < int(params["flip"].sum()) < 6  # both cases are tested

    crop = RandomCrop(size=8, padding=[1, 2])  # 1 left/right, 2 top/bottom
    params = crop.draw(6, (3, 10, 10), generator)
    fill = torch.tensor([0.5, -1.0, 2.0])
    out = crop.apply(BATCH, params, fill)
    for x, top, left, y in zip(BATCH, params["top"], params["left"], out):
        padded = torch.stack([F.pad(c[None], [1, 2], fill=float(v))[0] for c, v in zip(x, fill)])
        assert torch.equal(y, F.crop(padded, int(top), int(left), 8, 8))

    rotation = RandomRotation(degrees=30)
    params = rotation.draw(6, (3, 10, 10), generator)
    out = rotation.apply(BATCH, params, torch.zeros(3))
    for x, angle, y in zip(BATCH, params["angle"], out):
        expected = F.rotate(x, float(angle), interpolation=F.InterpolationMode.NEAREST)
        assert (y == expected).float().mean() > 0.9  # nearest-pixel rounding differs at a few edges
    quarter = rotation.apply(BATCH, {"angle": torch.full((6,), 90.0)}, torch.zeros(3))
    assert torch.allclose(quarter, torch.rot90(BATCH, 1, (-2, -1)), atol=1e-6)  # counter-clockwise, as torchvision


def _images(root):
    for split, count in (("train", 24), ("test", 6)):
        for label, value in (("dark", 40), ("light", 210)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (value, value // 2 + i, 255 - value)).save(folder / f"{i}.png")


SPEC = """
name: augmented
seed: 4
data:
  dataset: image_folder
  root: {root}
  transforms: [to_tensor, {{random_crop: {{size: 8, padding: 2}}}}, random_horizontal_flip, random_rotation: {{degrees: 15}},
               {{normalize: {{mean: auto, std: auto}}}}]
  batch_size: 8
model: [flatten, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 3, optimizer: {{name: sgd, lr: 0.1}}, deterministic: true}}
"""


def test_an_augmented_run_stays_on_the_device_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    _images(tmp_path / "images")
    plan = loads_spec(SPEC.format(root=tmp_path / "images"), "aug.yaml").runs()[0]
    prepared = prepare_data(plan.spec.data, plan.spec.seed, torch.device("cpu"), log=lambda _: None)
    assert prepared.path == "device"

    whole = train_run(plan, tmp_path / "whole", prepared, RunContext(torch.device("cpu"), lambda _: None))
    batches = iter(range(1000))
    stopped = RunContext(torch.device("cpu"), lambda _: None, stop_requested=lambda: next(batches) == 8)
    with pytest.raises(Exception, match="stopped at epoch 2, batch 3"):  # 6 batches an epoch: mid-epoch 2
        train_run(plan, tmp_path / "resumed", prepared, stopped)
    resumed = train_run(plan, tmp_path / "resumed", prepared, RunContext(torch.device("cpu"), lambda _: None), resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if "duration" not in k} for r in rows]  # noqa: E731
    assert strip(resumed.rows) == strip(whole.rows)
    a = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "weights.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The augmentation is live: without it the same run ends elsewhere.
    plain = loads_spec(SPEC.format(root=tmp_path / "images"), "aug.yaml",
                       ["data.transforms=[to_tensor, {normalize: {mean: auto, std: auto}}]"]).runs()[0]
    flat = train_run(plain, tmp_path / "plain", prepare_data(plain.spec.data, 4, torch.device("cpu"), log=lambda _: None),
                     RunContext(torch.device("cpu"), lambda _: None))
    assert flat.rows[-1]["loss"] != whole.rows[-1]["loss"]
