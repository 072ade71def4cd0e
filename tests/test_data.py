"""evonas.data: finding and reading the datasets, the in-memory split, batched augmentation."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evonas.data import (
    DataWarning,
    ImageDataset,
    augment,
    clear_cache,
    iterate_batches,
    load_dataset,
    normalize,
    resolve_data_dir,
    sample_batch,
    synthetic,
)
from evonas.errors import DataError

# The usual published per-channel statistics (0..1 scale).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, counts: dict[str, int], seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Fake ``root/cifar-10-batches-py`` files (bytes keys, as in the original); returns their content."""
    rng = np.random.default_rng(seed)
    content = {}
    for name, n in counts.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        write_pickle(root / "cifar-10-batches-py" / name, {b"batch_label": name.encode(), b"data": data, b"labels": labels})
        content[name] = (data, labels)
    write_pickle(root / "cifar-10-batches-py" / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)]})
    return content


def full_cifar10_counts(n: int = 4) -> dict[str, int]:
    return {**{f"data_batch_{i}": n for i in range(1, 6)}, "test_batch": n}


def index_coded(n: int, size: int = 4) -> ImageDataset:
    """Image i is constant i (mean 0, std 1), so a normalised batch reveals which images it holds."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, size, size).clone()
    return ImageDataset("coded", images, torch.arange(n) % 7, 7, (0.0,) * 3, (1.0,) * 3)


def indices_of(batch: torch.Tensor) -> torch.Tensor:
    return (batch[:, 0, 0, 0] * 255).round().long()


# ---------------------------------------------------------------- shared CIFAR-10 (real data)

def test_shared_cifar10_loads_warns_about_missing_batches_and_has_published_stats(cifar_dir):
    clear_cache()
    with pytest.warns(DataWarning, match="data_batch_2, data_batch_3, data_batch_4, data_batch_5 missing"):
        ds = load_dataset("cifar10", data_dir=cifar_dir, download=False)
    assert (len(ds), ds.images.shape, ds.images.dtype, ds.labels.dtype) == (10_000, (10_000, 3, 32, 32), torch.uint8, torch.int64)
    assert ds.images.is_contiguous() and ds.resolution == 32 and ds.num_classes == 10 and not ds.synthetic
    assert set(ds.labels.tolist()) == set(range(10))
    assert ds.mean == pytest.approx(CIFAR10_MEAN, abs=1e-3) and ds.std == pytest.approx(CIFAR10_STD, abs=1e-3)
    values = torch.arange(256, dtype=torch.float64) / 255
    for c in range(3):  # exact channel statistics from a histogram, without a float copy of the data
        share = torch.bincount(ds.images[:, c].flatten(), minlength=256).double() / ds.images[:, c].numel()
        mean = (share * values).sum().item()
        std = ((share * values**2).sum().item() - mean**2) ** 0.5
        assert (mean, std) == pytest.approx((ds.mean[c], ds.std[c]), abs=0.01)
    x = normalize(ds.subset(2000).images, ds.mean, ds.std)
    assert x.dtype == torch.float32
    assert x.mean((0, 2, 3)).tolist() == pytest.approx([0.0] * 3, abs=0.03)
    assert x.std((0, 2, 3)).tolist() == pytest.approx([1.0] * 3, abs=0.03)


def test_repeated_loads_reuse_the_decoded_tensors_without_warning_again(cifar_dir):
    first = load_dataset("cifar10", data_dir=cifar_dir, download=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_dataset("cifar10", data_dir=cifar_dir, download=False)
    assert again.images is first.images and again is not first


def test_shared_cifar10_test_split_is_balanced(cifar_dir):
    ds = load_dataset("cifar10", "test", data_dir=cifar_dir, download=False)
    assert ds.split == "test" and len(ds) == 10_000
    assert torch.bincount(ds.labels).tolist() == [1000] * 10


def test_env_var_and_the_dataset_folder_itself_both_work(cifar_dir, monkeypatch):
    monkeypatch.setenv("EVONAS_DATA", str(cifar_dir))
    via_env = load_dataset("cifar10", "test", download=False)
    monkeypatch.delenv("EVONAS_DATA")
    direct = load_dataset("cifar10", "test", data_dir=cifar_dir / "cifar-10-batches-py", download=False)
    assert via_env.images is direct.images


# ---------------------------------------------------------------- where the data folder is

def test_data_folder_is_argument_then_env_then_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EVONAS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("EVONAS_DATA")
    assert resolve_data_dir() == tmp_path / "xdg" / "evonas" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "evonas" / "data"


# ---------------------------------------------------------------- fake CIFAR folders

def test_reads_every_present_training_batch_in_order_and_names_the_missing(tmp_path):
    content = write_cifar10(tmp_path, {"data_batch_1": 3, "data_batch_3": 4, "test_batch": 5})
    with pytest.warns(DataWarning, match=r"data_batch_2, data_batch_4, data_batch_5 missing .*2 of 5"):
        ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    data = np.concatenate([content["data_batch_1"][0], content["data_batch_3"][0]])
    assert torch.equal(ds.images, torch.from_numpy(data).view(7, 3, 32, 32))
    assert ds.labels.tolist() == content["data_batch_1"][1] + content["data_batch_3"][1]
    assert ds.source == str(tmp_path / "cifar-10-batches-py")
    test = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert test.labels.tolist() == content["test_batch"][1]


def test_all_five_batches_give_no_warning(tmp_path):
    write_cifar10(tmp_path, full_cifar10_counts(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset("cifar10", data_dir=tmp_path, download=False)) == 10


def test_cifar100_uses_fine_labels_and_published_stats(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("test", 3)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        write_pickle(tmp_path / "cifar-100-python" / split, {
            "data": data, "fine_labels": [99, 0, 42, 7, 5, 3][:n], "coarse_labels": [19] * n})
    ds = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert (len(ds), ds.num_classes) == (6, 100)
    assert ds.labels.tolist() == [99, 0, 42, 7, 5, 3]
    assert ds.mean == pytest.approx(CIFAR100_MEAN, abs=1e-3) and ds.std == pytest.approx(CIFAR100_STD, abs=1e-3)
    assert len(load_dataset("cifar100", "test", data_dir=tmp_path, download=False)) == 3


def test_missing_test_batch_is_a_clear_error(tmp_path):
    write_cifar10(tmp_path, {"data_batch_1": 2})
    with pytest.raises(DataError, match="incomplete: test_batch missing; delete .* so evonas downloads a fresh copy"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    (tmp_path / "ImageNet16").mkdir()
    with pytest.raises(DataError, match="incomplete: val_data missing; restore the original file of the NAS-Bench-201"):
        load_dataset("imagenet16-120", "test", data_dir=tmp_path, download=False)


def _evil(marker: Path) -> object:
    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    return {"data": Evil(), "labels": []}


CORRUPT = {
    "garbage": lambda m: b"this is not a pickle",
    "truncated": lambda m: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, protocol=2)[:-40],
    "not a dict": lambda m: pickle.dumps([1, 2, 3]),
    "no data": lambda m: pickle.dumps({"labels": [0]}),
    "wrong shape": lambda m: pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}),
    "wrong dtype": lambda m: pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}),
    "label count": lambda m: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}),
    "label range": lambda m: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}),
    "text labels": lambda m: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": ["a", "b"]}),
    "code": lambda m: pickle.dumps(_evil(m)),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_batch_file_names_the_file_and_the_fix(tmp_path, kind):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(CORRUPT[kind](marker))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(folder / "test_batch") in message and "\n" not in message
    assert f"delete {folder} so evonas downloads a fresh copy" in message
    assert not marker.exists()


# ---------------------------------------------------------------- ImageNet16-120

def test_imagenet16_keeps_the_first_120_classes_with_zero_based_labels(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "ImageNet16"
    files = {}
    for name, n in (("train_data_batch_1", 50), ("train_data_batch_2", 40), ("val_data", 30)):
        data = rng.integers(0, 256, (n, 768), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(1, 241, n)]  # 1-based, half of them beyond 120
        write_pickle(folder / name, {"data": data, "labels": labels, "mean": np.zeros(768)})
        files[name] = (data, np.array(labels))
    with pytest.warns(DataWarning, match="train_data_batch_3.*train_data_batch_10 missing"):
        train = load_dataset("ImageNet16-120", data_dir=tmp_path, download=False)
    data = np.concatenate([files[f][0] for f in ("train_data_batch_1", "train_data_batch_2")])
    labels = np.concatenate([files[f][1] for f in ("train_data_batch_1", "train_data_batch_2")])
    keep = labels <= 120
    assert 0 < keep.sum() < len(labels)
    assert (train.num_classes, train.resolution, train.images.shape[1:]) == (120, 16, (3, 16, 16))
    assert torch.equal(train.images, torch.from_numpy(data[keep]).view(-1, 3, 16, 16))
    assert train.labels.tolist() == (labels[keep] - 1).tolist()
    assert train.mean == pytest.approx((122.68 / 255, 116.66 / 255, 104.01 / 255))
    val = load_dataset("imagenet16-120", "test", data_dir=tmp_path, download=False)
    assert val.labels.tolist() == (files["val_data"][1][files["val_data"][1] <= 120] - 1).tolist()


def test_imagenet16_absent_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("imagenet16-120", data_dir=tmp_path)
    message = str(info.value)
    for part in (f"no ImageNet16/ in {tmp_path}", "--data-dir", "EVONAS_DATA", "train_data_batch_1..train_data_batch_10"):
        assert part in message


# ---------------------------------------------------------------- synthetic and bad names

def test_synthetic_data_follows_its_options_and_seed():
    ds = load_dataset("synthetic", num_images=300, num_classes=5, resolution=8, seed=3)
    assert ds.synthetic and ds.images.shape == (300, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.num_classes == 5 and set(ds.labels.tolist()) == set(range(5))
    assert torch.equal(ds.images, load_dataset("synthetic", num_images=300, num_classes=5, resolution=8, seed=3).images)
    assert not torch.equal(ds.images, synthetic(num_images=300, num_classes=5, resolution=8, seed=4).images)
    assert not torch.equal(ds.images, synthetic("test", num_images=300, num_classes=5, resolution=8, seed=3).images)
    x = normalize(ds.images, ds.mean, ds.std)
    assert x.mean().item() == pytest.approx(0.0, abs=0.02) and x.std().item() == pytest.approx(1.0, abs=0.02)
    assert len(load_dataset("synthetic")) == 1024


@pytest.mark.parametrize("call, match", [
    (lambda: load_dataset("mnist"), "unknown dataset 'mnist'; choose one of cifar10, cifar100, imagenet16-120, synthetic"),
    (lambda: load_dataset("synthetic", split="valid"), "unknown split 'valid'"),
    (lambda: load_dataset("synthetic", num_images=0), "num_images must be an integer >= 1"),
    (lambda: load_dataset("synthetic", colour=True), "unknown option.*colour.*num_images"),
    (lambda: load_dataset("cifar10", num_images=5), "unknown option.*num_images.*url, md5, sha256"),
])
def test_bad_requests_are_one_line_data_errors(call, match):
    with pytest.raises(DataError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- the dataset object

def test_subset_takes_counts_slices_indices_and_masks():
    ds = index_coded(10)
    assert indices_of(normalize(ds.subset(3).images, ds.mean, ds.std)).tolist() == [0, 1, 2]
    assert ds.subset(slice(2, 8, 3)).labels.tolist() == [2, 5]
    picked = ds.subset(torch.tensor([9, 0]))
    assert picked.images[:, 0, 0, 0].tolist() == [9, 0] and picked.labels.tolist() == [2, 0]
    assert len(ds.subset(ds.labels == 1)) == 2 and ds.subset(3).resolution == 4
    with pytest.raises(DataError, match="cannot take 11 images"):
        ds.subset(11)
    assert ds.to("cpu") is ds


def test_dataset_rejects_wrong_tensor_types():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("x", torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), 2, (0,) * 3, (1,) * 3)
    with pytest.raises(ValueError, match="one per image"):
        ImageDataset("x", torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 2, (0,) * 3, (1,) * 3)


# ---------------------------------------------------------------- augmentation

def _shifts(images: torch.Tensor, pad: int) -> torch.Tensor:
    """All (2*pad+1)^2 zero-filled shifts of ``images``: S x N x C x H x W."""
    h, w = images.shape[2:]
    padded = F.pad(images, (pad,) * 4)
    return torch.stack([padded[:, :, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)])


def _as_u8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def test_normalize_is_the_per_channel_formula():
    images = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    expected = (images.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(normalize(images, mean, std), expected, atol=1e-5)


def test_crop_is_a_zero_filled_shift_of_the_original_covering_every_offset():
    images = torch.randint(1, 256, (400, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = _as_u8(augment(images, (0.0,) * 3, (1.0,) * 3, torch.Generator().manual_seed(1), padding=4, flip=False))
    matches = (_shifts(images, 4) == out).flatten(2).all(2)  # shifts x images
    assert matches.any(0).all(), "some crop is not a shift of its image"
    offsets = matches.float().argmax(0)
    assert len(set(offsets.tolist())) > 70, "vertical and horizontal offsets are drawn independently"
    assert (out != images).flatten(1).any(1).float().mean() > 0.8


def test_flip_mirrors_about_half_the_images_and_keeps_the_rest():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = _as_u8(augment(images, (0.0,) * 3, (1.0,) * 3, torch.Generator().manual_seed(2), padding=0))
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert (same ^ mirrored).all()
    assert 16 < mirrored.sum() < 48


def test_crop_and_flip_together_preserve_content():
    images = torch.randint(1, 256, (100, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = _as_u8(augment(images, (0.0,) * 3, (1.0,) * 3, torch.Generator().manual_seed(3)))
    plain = (_shifts(images, 4) == out).flatten(2).all(2).any(0)
    mirrored = (_shifts(images.flip(-1), 4) == out).flatten(2).all(2).any(0)
    assert (plain | mirrored).all() and mirrored.any() and plain.any()


@pytest.mark.parametrize("size", [8, 5])
def test_cutout_zeroes_one_square_after_normalisation(size):
    images = torch.full((300, 3, 16, 16), 200, dtype=torch.uint8)
    mean, std = (0.3, 0.4, 0.5), (0.2, 0.2, 0.2)
    out = augment(images, mean, std, torch.Generator().manual_seed(4), padding=0, flip=False, cutout=size)
    assert (out[:, :, 0:1, 0:1] != 0).any(), "uncut pixels keep their normalised value"
    zero = out == 0
    assert (zero == zero[:, :1]).all(), "the hole spans every channel"
    hole = zero[:, 0]
    rows, cols = hole.any(2), hole.any(1)
    assert torch.equal(hole, rows[:, :, None] & cols[:, None, :]), "the hole is one rectangle"
    assert torch.equal(out[~zero], normalize(images, mean, std)[~zero])
    for lines in (rows, cols):
        extent = lines.sum(1)
        at_border = lines[:, 0] | lines[:, -1]
        assert (extent[~at_border] == size).all() and (extent <= size).all() and (extent > 0).all()
    assert (~(rows[:, 0] | rows[:, -1] | cols[:, 0] | cols[:, -1])).sum() > 50


def test_same_generator_seed_gives_identical_batches():
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    run = lambda seed: augment(images, (0.5,) * 3, (0.25,) * 3, torch.Generator().manual_seed(seed), cutout=4)
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


# ---------------------------------------------------------------- batches

def test_sample_batch_draws_distinct_images_deterministically():
    ds = synthetic(num_images=200, resolution=8)
    x, y = sample_batch(ds, 64, torch.Generator().manual_seed(0))
    assert (x.shape, x.dtype, y.shape, y.dtype) == ((64, 3, 8, 8), torch.float32, (64,), torch.int64)
    x2, y2 = sample_batch(ds, 64, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    coded = index_coded(200)
    xc, yc = sample_batch(coded, 64, torch.Generator().manual_seed(1), augment=False)
    idx = indices_of(xc)
    assert len(set(idx.tolist())) == 64 and torch.equal(yc, coded.labels[idx])
    with pytest.raises(DataError, match="batch size 201 does not fit"):
        sample_batch(coded, 201, torch.Generator())


def test_an_epoch_visits_every_image_once_in_a_seeded_order():
    ds = index_coded(50)
    batches = list(iterate_batches(ds, 16, torch.Generator().manual_seed(0), augment=False))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    order = torch.cat([indices_of(x) for x, _ in batches])
    assert sorted(order.tolist()) == list(range(50)) and order.tolist() != list(range(50))
    assert torch.equal(torch.cat([y for _, y in batches]), ds.labels[order])
    again = torch.cat([indices_of(x) for x, _ in iterate_batches(ds, 16, torch.Generator().manual_seed(0), augment=False)])
    assert torch.equal(order, again)
    plain = list(iterate_batches(ds, 16, shuffle=False, augment=False, drop_last=True))
    assert [len(y) for _, y in plain] == [16, 16, 16]
    assert torch.cat([indices_of(x) for x, _ in plain]).tolist() == list(range(48))


def test_augmented_epochs_repeat_with_the_seed_and_need_a_generator():
    ds = synthetic(num_images=40, resolution=8)
    epoch = lambda: [x for x, _ in iterate_batches(ds, 16, torch.Generator().manual_seed(5), cutout=4)]
    first, second = epoch(), epoch()
    assert all(torch.equal(a, b) for a, b in zip(first, second)) and first[0].dtype == torch.float32
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        next(iterate_batches(ds, 16))
