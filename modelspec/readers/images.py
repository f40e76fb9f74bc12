"""Images: torchvision's data sets by name, and folders with one folder of images per class.

Where the data set holds its images as one uint8 array (the MNIST family, CIFAR-10), `tensors` has
them as (N, C, H, W) for the decode-once path; `dataset` is the per-sample torchvision data set for
the DataLoader path. Missing data, failed downloads, class folders that differ between train and
test and unreadable images end as one `SpecError` that names the folder or the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import SpecError
from .sources import Item, Opened, Source, carve

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _cause(exc: Exception) -> str:
    """torchvision's message in one line: "Error downloading x:\\nTried ..., got:\\n<cause>" keeps the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 or not lines[0].endswith(":") else f"{lines[0]} {lines[-1]}"
    return text[:300]


def expected_folder(data, cls) -> Path:
    """The folder torchvision reads: <root>/cifar-10-batches-py, or <root>/<Class>/raw (MNIST family)."""
    base = getattr(cls, "base_folder", None)
    return Path(data.root) / base if isinstance(base, str) else Path(data.root) / cls.__name__ / "raw"


def _torchvision_split(data, train: bool) -> Source:
    import torchvision

    cls = getattr(torchvision.datasets, data.torchvision_class)
    folder = expected_folder(data, cls)
    existed = [p for p in (folder, *folder.parents) if p.exists()]
    # torchvision fails with "Dataset not found", "Error downloading", a URLError, and, for a damaged
    # file, with any type at all (an AssertionError on a bad MNIST header)
    try:
        dataset = _quietly(lambda: cls(root=data.root, train=train, download=data.download), data.download)
    except Exception as exc:  # noqa: BLE001
        damaged = _damaged_file(cls, folder)
        if damaged is not None:
            raise SpecError(
                f"{data.dataset} in {folder}/ is damaged: {damaged}",
                path=("data", "root"),
                hint=f"delete {folder} and download it again (data.download: true), or put an intact copy there",
            ) from None
        _remove_empty_new_folders(folder, existed)
        if data.download:
            raise SpecError(
                f"downloading {data.dataset} into {data.root} failed: {_cause(exc)}",
                path=("data", "download"),
                hint="check the internet connection, or put the files in place and set data.download: false",
            ) from None
        raise SpecError(
            f"{data.dataset} is not in {folder}/ ({str(exc).split('.')[0][:200]})",
            path=("data", "root"),
            hint=f"set data.download: true to fetch it (needs internet), or point data.root at the folder "
            f"that holds {folder.relative_to(data.root)}/ in torchvision's layout",
        ) from None
    images = torch.as_tensor(dataset.data)  # MNIST: (N, H, W); CIFAR: (N, H, W, C)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    targets = torch.as_tensor(dataset.targets, dtype=torch.long)
    return Source(dataset, targets, images.contiguous(), len(dataset.classes), True, list(dataset.classes))


def _damaged_file(cls, folder: Path) -> str | None:
    """The first file of a torchvision data set in `folder` that is there but not as torchvision
    wrote it, with why: CIFAR-10 by each file's checksum (a missing one among the others counts), the
    MNIST family by reading each file's header. None when the folder is not there at all."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
    from torchvision.datasets.utils import check_integrity

    if not folder.is_dir():
        return None
    if hasattr(cls, "train_list"):  # CIFAR: a checksum per file
        for name, md5 in [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]:
            if not (folder / name).is_file():
                return f"{folder / name} is missing"
            if not check_integrity(str(folder / name), md5):
                return f"{folder / name} does not have the checksum of the original"
        return None
    for url, _ in cls.resources:  # the MNIST family: the raw files, unpacked
        path = folder / Path(url).name.removesuffix(".gz")
        if not path.is_file():
            return f"{path} is missing" if any(folder.iterdir()) else None
        try:
            read_sn3_pascalvincent_tensor(str(path), strict=False)
        except Exception:  # noqa: BLE001 - a bad header fails with any type (an AssertionError)
            return f"{path} cannot be read"
    return None


def _quietly(make, downloading: bool):
    """torchvision prints every URL it tries and a progress bar, also for a download that then fails;
    the grid's log says what is downloaded and the error says why it failed."""
    if not downloading:
        return make()
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return make()


def _remove_empty_new_folders(folder: Path, existed: list[Path]) -> None:
    """What a failed download created and left empty (torchvision makes <root>/<Name>/raw first)."""
    for path in (folder, *folder.parents):
        if path in existed:
            return
        try:
            path.rmdir()  # only if empty
        except OSError:
            return


def open_torchvision(data, seed: int) -> Opened:
    train = _torchvision_split(data, train=True)
    train_idx, val_idx = carve(len(train.targets), data.val_split, seed)
    return Opened(train, _torchvision_split(data, train=False), train_idx, val_idx)


def image_errors() -> tuple[type[Exception], ...]:
    """What Pillow raises for a file that is no readable image: not an image or truncated (OSError,
    with UnidentifiedImageError; SyntaxError and ValueError from some decoders), or an image whose
    header claims more pixels than Image.MAX_IMAGE_PIXELS (DecompressionBombError, not an OSError: a
    few kilobytes of PNG that would decode into gigabytes). Each is that one file's problem."""
    from PIL import Image

    return OSError, ValueError, SyntaxError, Image.DecompressionBombError


def image_problem(exc: Exception) -> str:
    """Pillow's reason in one line."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


class _NamedImageFolder:
    """torchvision's ImageFolder whose unreadable image names the file (the run fails with that reason)."""

    def __init__(self, folder):
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        try:
            return self.folder[index]
        except image_errors() as exc:
            path = self.folder.samples[index][0]
            raise OSError(f"cannot read the image {path}: {image_problem(exc)}") from None


def _read_folder(data, sub: str):
    from torchvision.datasets import ImageFolder

    folder = Path(data.root) / sub
    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise SpecError(f"cannot read the image folder {folder}: {exc}", path=("data", "root")) from None


def _check_classes(data, classes: list[str], test_classes: list[str]) -> None:
    if test_classes == classes:
        return
    extra = sorted(set(test_classes) - set(classes))
    missing = sorted(set(classes) - set(test_classes))
    parts = ([f"extra {', '.join(extra)}"] if extra else []) + ([f"missing {', '.join(missing)}"] if missing else [])
    raise SpecError(
        f"the test folder {Path(data.root) / data.test_dir} has other classes than the training folder "
        f"{Path(data.root) / data.train_dir}: {'; '.join(parts)}",
        path=("data", "test_dir"),
        hint="give both folders the same class folders (an empty folder is a class with no images)",
    )


def _folder_source(data, folder, classes: list[str]) -> Source:
    targets = torch.as_tensor(folder.targets, dtype=torch.long)
    outputs = len(classes)
    if data.target_kind == "binary":
        targets, outputs = targets.float(), 1
    return Source(_NamedImageFolder(folder), targets, None, outputs, True, list(classes))


def open_image_folder(data, seed: int) -> Opened:
    train_folder = Path(data.root) / data.train_dir
    if not train_folder.is_dir():
        raise SpecError(
            f"no image folder at {train_folder}",
            path=("data", "root"),
            hint="an image_folder data set has one folder per class under <root>/<train_dir>",
        )
    train = _read_folder(data, data.train_dir)
    classes = list(train.classes)
    if data.target_kind == "binary" and len(classes) != 2:
        raise SpecError(f"binary targets need two class folders; {train_folder} has {len(classes)}: "
                        f"{', '.join(classes[:6])}", path=("data", "target_kind"),
                        hint="use target_kind: classes for more than two classes")
    if data.num_classes is not None and data.num_classes != len(classes):
        raise SpecError(f"num_classes={data.num_classes}, but {train_folder} has {len(classes)} class folders: "
                        f"{', '.join(classes[:10])}", path=("data", "num_classes"),
                        hint="omit num_classes to infer it")
    test = None
    if data.test_dir is not None and (Path(data.root) / data.test_dir).is_dir():  # a test split is optional
        test_folder = _read_folder(data, data.test_dir)
        _check_classes(data, classes, list(test_folder.classes))
        test = _folder_source(data, test_folder, classes)
    source = _folder_source(data, train, classes)
    train_idx, val_idx = carve(len(source.targets), data.val_split, seed)
    return Opened(source, test, train_idx, val_idx)


# --------------------------------------------------------------------------------------------------
# raw images for predict and evaluate: `prepare` turns a PIL image into the model's input


def image_files(arguments: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted, recursively)."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise SpecError(f"{path} holds no image files", hint="suffixes: " + ", ".join(sorted(IMAGE_SUFFIXES)))
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise SpecError(f"no such input: {path}", hint="give image files or folders")
    return files


def read_image_items(arguments: Sequence[str], prepare: Callable[[Any], torch.Tensor]) -> list[Item]:
    """One item per image file; a file that cannot be read is that item's error, the rest go on."""
    return [read_image(path, str(path), prepare) for path in image_files(arguments)]


def read_image(source: Any, name: str, prepare: Callable[[Any], torch.Tensor],
               check: Callable[[Any], None] | None = None) -> Item:
    """One image, from a path or a file object (a served upload), opened once: `check(image)` sees
    it before it is decoded (its header's size) and may refuse it by raising. An image that cannot
    be read is the item's error (a decompression bomb too)."""
    from PIL import Image

    try:
        with Image.open(source) as image:
            if check is not None:
                check(image)
            return Item(name, prepare(image))
    except image_errors() as exc:
        return Item(name, None, f"cannot read the image: {image_problem(exc)}")


def labelled_images(folder: Path, class_names: list[str],
                    prepare: Callable[[Any], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """New labelled images, one folder per class named as in training: (N, C, H, W) inputs and the
    class indices of the model's classes."""
    from torchvision.datasets import ImageFolder

    try:
        dataset = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise SpecError(f"cannot read the image folder {folder}: {exc}",
                        hint="give a folder with one sub-folder of images per class") from None
    unknown = sorted(set(dataset.classes) - set(class_names))
    if unknown:
        raise SpecError(f"{folder} has classes the model was not trained on: {', '.join(unknown)}",
                        hint="the model's classes: " + ", ".join(class_names))
    samples, labels = [], []
    for path, label in dataset.samples:
        samples.append(_labelled_image(path, prepare))
        labels.append(class_names.index(dataset.classes[label]))
    return torch.stack(samples), torch.tensor(labels)


def _labelled_image(path: str, prepare: Callable[[Any], torch.Tensor]) -> torch.Tensor:
    """One labelled image, prepared; one that cannot be read (truncated, not an image, a decompression
    bomb) is an error naming it: its label would be missing from the measure."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return prepare(image)
    except image_errors() as exc:
        raise SpecError(f"cannot read the image {path}: {image_problem(exc)}",
                        hint="remove or replace the file, and evaluate again") from None
