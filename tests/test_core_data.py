import gzip

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from bench.core import data as bdata


def test_batch_crop_flip_matches_per_image_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = bdata.batch_crop_flip(x, pad=4, flip=True, generator=torch.Generator().manual_seed(5))
    # replay the same random draws and do it one image at a time with torchvision
    g = torch.Generator().manual_seed(5)
    oy = torch.randint(0, 9, (16,), generator=g)
    ox = torch.randint(0, 9, (16,), generator=g)
    fl = torch.rand(16, generator=g) < 0.5
    for i in range(16):
        padded = TF.pad(x[i].float(), [4, 4, 4, 4], padding_mode="reflect")
        ref = TF.crop(padded, int(oy[i]), int(ox[i]), 32, 32)
        if fl[i]:
            ref = TF.hflip(ref)
        assert torch.equal(out[i], ref.to(torch.uint8))
    assert out.dtype == torch.uint8 and out.shape == x.shape


def test_fashion_mnist_offline_split_and_sizes():
    d = bdata.load("fashion_mnist", color="gray", image_size=32, n_train=500, n_test=200, val_fraction=0.02)
    assert d.train_x.shape == (500, 1, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.val_x.shape[0] == 10 and d.test_x.shape[0] == 200
    # 28x28 is zero-padded by 2 pixels on every side
    assert d.train_x[:, :, :2].max() == 0 and d.train_x[:, :, -2:].max() == 0
    assert set(d.train_y.tolist()) <= set(range(10)) and d.num_classes == 10
    # the split is seeded and train/val are disjoint
    tr, va = bdata.split_indices(60000, 500, 0.02, 0)
    assert not set(tr.tolist()) & set(va.tolist())
    tr2, va2 = bdata.split_indices(60000, 500, 0.02, 0)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    rgb = bdata.load("fashion_mnist", color="rgb", n_train=20, n_test=10)
    assert rgb.train_x.shape[1] == 3 and torch.equal(rgb.train_x[:, 0], rgb.train_x[:, 2])


def test_gray_conversion_is_itu_luma():
    x = torch.tensor([[[[255]], [[0]], [[0]]], [[[0]], [[255]], [[0]]]], dtype=torch.uint8)
    g = bdata.convert_color(x, "gray")
    assert g.flatten().tolist() == [round(0.299 * 255), round(0.587 * 255)]


def test_idx_reader_against_numpy(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + (7).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(header + arr.tobytes())
    assert np.array_equal(bdata._read_idx_gz(p), arr)


def test_missing_cifar_says_where_it_looked(tmp_path):
    with pytest.raises(bdata.DatasetNotFound) as e:
        bdata.load("cifar10", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "cifar-10-python.tar.gz" in msg


def test_missing_mnist_lists_dirs(tmp_path):
    with pytest.raises(bdata.DatasetNotFound, match=str(tmp_path / "MNIST" / "raw")):
        bdata.load("mnist", data_dir=tmp_path, download=False)


def test_unknown_dataset_lists_valid():
    with pytest.raises(ValueError, match="cifar10, cifar100, fashion_mnist"):
        bdata.load("imagenet")


def test_image_folder(tmp_path):
    from PIL import Image
    for i in range(3):
        Image.fromarray(np.full((40, 30, 3), i * 50, np.uint8)).save(tmp_path / f"{i}.png")
    x = bdata.load_image_folder(tmp_path, size=32)
    assert x.shape == (3, 3, 32, 32) and x[1].float().mean().item() == pytest.approx(50, abs=1)
    with pytest.raises(bdata.DatasetNotFound, match="no images"):
        bdata.load_image_folder(tmp_path / "empty")
