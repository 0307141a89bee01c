import gzip
import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matap.config import DataConfig
from matap.data import VideoDataset, generate, generated_split, load_split, load_videos, make_loader
from matap.data.digits import load_digits, read_idx_images
from matap.data.sets import checksum_path
from matap.errors import MatapError


@pytest.fixture(scope="module")
def digits():
    return load_digits("mnist", "train")


def test_sequences_are_a_function_of_seed_split_and_index(digits):
    a = generate(digits, 0, "train", [3, 4, 5])
    b = generate(digits, 0, "train", [5, 4, 3])
    np.testing.assert_array_equal(a[0], b[2])
    assert a.shape == (3, 20, 64, 64) and a.dtype == np.uint8
    assert not np.array_equal(generate(digits, 1, "train", [3])[0], a[0])
    assert not np.array_equal(generate(digits, 0, "val", [3])[0], a[0])


def test_longer_sequences_extend_shorter_ones(digits):
    short = generate(digits, 0, "train", [7], seq_len=20)
    long = generate(digits, 0, "train", [7], seq_len=100)
    np.testing.assert_array_equal(long[:, :20], short)
    assert long.shape == (1, 100, 64, 64)
    assert long[0, -1].sum() > 0  # digits stay in frame


@pytest.mark.parametrize("motion", ["reference", "classic"])
def test_digits_move_and_stay_in_frame(digits, motion):
    video = generate(digits, 0, "train", [0], seq_len=30, motion=motion)[0]
    assert all(frame.sum() > 0 for frame in video)
    assert any(not np.array_equal(video[t], video[t + 1]) for t in range(29))


def test_classic_motion_combines_by_maximum(digits):
    video = generate(digits, 0, "train", range(20), seq_len=10, motion="classic")
    assert video.max() <= digits.max()


def test_train_and_validation_digits_are_disjoint():
    train, val = load_digits("mnist", "train"), load_digits("mnist", "val")
    assert len(train) == 4000 and len(val) == 1000
    train_set = {d.tobytes() for d in train}
    assert not any(d.tobytes() in train_set for d in val)


def test_generated_split_is_cached_and_memory_mapped(tmp_path):
    cfg = DataConfig(train_size=4, val_size=2, seq_len=5, cache_dir=str(tmp_path))
    first = generated_split(cfg, "train")
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    again = generated_split(cfg, "train")
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(first, again)
    generated_split(DataConfig(train_size=4, val_size=2, seq_len=5, seed=1, cache_dir=str(tmp_path)), "train")
    assert len(list(tmp_path.glob("*.npy"))) == 2  # the key includes the seed


@pytest.mark.parametrize("damage", ["byte", "truncate", "checksum"])
def test_a_damaged_cache_entry_is_regenerated(tmp_path, capsys, damage):
    cfg = DataConfig(train_size=4, val_size=2, seq_len=5, cache_dir=str(tmp_path))
    original = np.array(generated_split(cfg, "train"))
    (path,) = tmp_path.glob("*.npy")
    written = path.read_bytes()
    assert checksum_path(path).read_text().strip() == hashlib.sha256(written).hexdigest()
    if damage == "byte":
        damaged = bytearray(written)
        damaged[-100] ^= 0xFF  # a pixel of the last video
        path.write_bytes(bytes(damaged))
    elif damage == "truncate":
        path.write_bytes(written[: len(written) // 2])
    else:
        checksum_path(path).unlink()  # e.g. a crash between the two writes
    again = generated_split(cfg, "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"matap: cached data {path}") and "regenerating" in err[0], err
    np.testing.assert_array_equal(again, original)
    assert path.read_bytes() == written and checksum_path(path).is_file()
    generated_split(cfg, "train")
    assert capsys.readouterr().err == ""  # verified, read as it is


def test_loader_yields_uint8_batches_in_a_seeded_order():
    videos = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 64, 64), np.uint8)
    loader = make_loader(videos, 4, shuffle=True, seed=3)
    first = [b[:, 0, 0, 0].tolist() for b in loader]
    again = [b[:, 0, 0, 0].tolist() for b in make_loader(videos, 4, shuffle=True, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    loader.sampler.set_epoch(1)
    assert [b[:, 0, 0, 0].tolist() for b in loader] != first


def test_a_cached_set_is_read_without_mapping_it_into_memory(tmp_path):
    cfg = DataConfig(train_size=6, val_size=2, seq_len=5, cache_dir=str(tmp_path))
    generated_split(cfg, "train")
    cached = generated_split(cfg, "train")        # memory-mapped from the verified cache file
    dataset = VideoDataset(cached)
    assert dataset._file is not None               # read with pread, not through the mapping
    expected = np.array(cached)
    for indices in ([0], [5, 1, 3], [2, 2], [-1]):
        np.testing.assert_array_equal(dataset.__getitems__(indices).numpy(), expected[indices])
    np.testing.assert_array_equal(dataset[4].numpy(), expected[4])
    batches = [b.numpy() for b in make_loader(cached, 4, shuffle=True, seed=3)]
    in_memory = [b.numpy() for b in make_loader(expected, 4, shuffle=True, seed=3)]
    assert len(batches) == len(in_memory) == 2
    for a, b in zip(batches, in_memory):
        np.testing.assert_array_equal(a, b)
    assert VideoDataset(cached[1:])._file is None and VideoDataset(expected)._file is None  # a slice, an array
    np.testing.assert_array_equal(VideoDataset(cached[1:]).__getitems__([0]).numpy(), expected[[1]])
    with pytest.raises(IndexError):
        dataset.__getitems__([6])


# --- user files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips():
    """Moving MNIST as a user might hold it: a few longer videos, and many short ones."""
    val = load_digits("mnist", "val")
    return {"few": generate(val, 1, "val", range(3), seq_len=20), "many": generate(val, 2, "val", range(30), seq_len=6)}


@pytest.mark.parametrize("which", ["few", "many"])
def test_the_same_videos_read_alike_under_any_name_and_layout(tmp_path, clips, which):
    videos = clips[which]                                    # (N, T, 64, 64)
    time_first = videos.transpose(1, 0, 2, 3)                # (T, N, 64, 64)
    written = []
    for name in ("videos.npy", "mnist_test_seq.npy", "mnist_test_seq_classic.npy", "clip.npy"):
        for layout, array in (("NT", videos), ("TN", time_first)):
            path = tmp_path / layout / name
            path.parent.mkdir(exist_ok=True)
            np.save(path, array)
            written.append((path, layout))
    np.save(tmp_path / "channel.npy", videos[:, :, None])                        # (N, T, 1, 64, 64)
    np.savez(tmp_path / "floats.npz", videos=time_first.astype(np.float32) / 255)
    written += [(tmp_path / "channel.npy", "NT"), (tmp_path / "floats.npz", "TN")]
    for path, layout in written:
        np.testing.assert_array_equal(load_videos(path), videos, err_msg=str(path))
        np.testing.assert_array_equal(load_videos(path, layout), videos, err_msg=str(path))
    assert load_videos(tmp_path / "NT" / "videos.npy", "TN").shape == videos.transpose(1, 0, 2, 3).shape


def _static(clips):
    """Each video one frame held still: along time nothing changes."""
    return np.repeat(clips["few"][:, :1], 8, axis=1)   # (3, 8, 64, 64)


@pytest.mark.parametrize("content, why", [
    ("static", "no frame differs from its neighbour"),
    ("copies", "no frame differs from its neighbour"),
    ("noise", "differ about as much along both"),
])
def test_auto_refuses_content_that_cannot_tell_time(tmp_path, clips, content, why):
    arrays = {"static": _static(clips), "copies": np.repeat(clips["few"][:1], 4, axis=0),
              "noise": np.random.default_rng(0).integers(0, 256, size=(3, 4, 64, 64), dtype=np.uint8)}
    np.save(tmp_path / "v.npy", arrays[content])
    with pytest.raises(MatapError, match=why) as error:
        load_videos(tmp_path / "v.npy")
    assert "layout='NT'" in str(error.value) and "layout='TN'" in str(error.value)
    assert "--layout" not in str(error.value)  # the library names the parameter, the CLI its flag
    np.testing.assert_array_equal(load_videos(tmp_path / "v.npy", "NT"), arrays[content])
    np.testing.assert_array_equal(load_videos(tmp_path / "v.npy", "TN"), arrays[content].transpose(1, 0, 2, 3))


def test_an_axis_of_length_one_holds_the_videos(tmp_path, clips):
    video = clips["few"][:1]                   # one video of 20 frames, (1, 20, 64, 64)
    for name, array in (("nt.npy", video), ("tn.npy", video.transpose(1, 0, 2, 3)), ("one.npy", video[:, :1])):
        np.save(tmp_path / name, array)
    np.testing.assert_array_equal(load_videos(tmp_path / "nt.npy"), video)
    np.testing.assert_array_equal(load_videos(tmp_path / "tn.npy"), video)
    assert load_videos(tmp_path / "one.npy").shape == (1, 1, 64, 64)  # one frame: both readings are the same
    assert load_videos(tmp_path / "tn.npy", "NT").shape == (20, 1, 64, 64)  # the override reads what it is told


def test_data_layout_reads_training_files(tmp_path, clips):
    np.save(tmp_path / "static.npy", _static(clips))
    np.save(tmp_path / "val.npy", clips["many"].transpose(1, 0, 2, 3))
    cfg = DataConfig(source="array", train_path=str(tmp_path / "static.npy"), val_path=str(tmp_path / "val.npy"))
    with pytest.raises(MatapError, match=r"give data\.layout=NT .* or data\.layout=TN"):
        load_split(cfg, "train")
    np.testing.assert_array_equal(load_split(cfg, "val"), clips["many"])
    cfg.layout = "NT"
    assert load_split(cfg, "train").shape == (3, 8, 64, 64)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2, 3, 32, 32), np.uint8), "64x64"),
        (np.zeros((2, 64, 64), np.uint8), "expected videos"),
        (np.zeros((2, 3, 2, 64, 64), np.uint8), "one channel"),
        (np.full((1, 2, 64, 64), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((1, 2, 64, 64), np.nan, np.float32), "NaN"),
        (np.zeros((1, 2, 64, 64), np.int64), "dtype"),
        (np.zeros((0, 2, 64, 64), np.uint8), "no frames"),
    ],
)
def test_bad_arrays_are_refused_with_a_reason(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(MatapError, match=message):
        load_videos(tmp_path / "bad.npy")


def test_bad_files_are_refused_with_a_reason(tmp_path):
    with pytest.raises(MatapError, match="no such file"):
        load_videos(tmp_path / "missing.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(MatapError, match="empty"):
        load_videos(tmp_path / "empty.npy")
    np.save(tmp_path / "full.npy", np.zeros((4, 3, 64, 64), np.uint8))
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(MatapError, match="truncated"):
        load_videos(tmp_path / "cut.npy")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MatapError, match="unsupported"):
        load_videos(tmp_path / "x.txt")
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 2, 64, 64), np.uint8), b=np.zeros((1, 2, 64, 64), np.uint8))
    with pytest.raises(MatapError, match="name one"):
        load_videos(tmp_path / "two.npz")
    assert load_videos(f"{tmp_path / 'two.npz'}:b").shape == (1, 2, 64, 64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=5),
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int16, np.bool_]),
    scale=st.sampled_from([0.0, 1.0, 255.0, -1.0]),
)
def test_array_loader_returns_valid_videos_or_a_matap_error(tmp_path, shape, dtype, scale):
    shape = [s if i < len(shape) - 2 else 64 * (s % 2) for i, s in enumerate(shape)]
    array = (np.random.default_rng(0).random(shape) * scale).astype(dtype)
    path = tmp_path / "h.npy"
    np.save(path, array)
    try:
        out = load_videos(path)
    except MatapError as exc:
        assert str(exc)
    else:
        assert out.dtype == np.uint8 and out.ndim == 4 and out.shape[2:] == (64, 64) and out.size > 0


def _write_idx(path, images):
    header = b"\x00\x00\x08\x03" + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
    data = header + images.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_idx_folder_source(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:3])
    np.testing.assert_array_equal(load_digits("idx", "train", str(tmp_path)), images)
    assert load_digits("idx", "val", str(tmp_path)).shape == (3, 28, 28)
    cfg = DataConfig(source="idx", idx_dir=str(tmp_path), train_size=2, val_size=2, seq_len=4, cache_dir=str(tmp_path))
    assert generated_split(cfg, "val").shape == (2, 4, 64, 64)


def test_bad_idx_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01" + bytes(20))
    with pytest.raises(MatapError, match="header"):
        read_idx_images(tmp_path / "bad")
    _write_idx(tmp_path / "ok", np.zeros((3, 28, 28), np.uint8))
    (tmp_path / "cut").write_bytes((tmp_path / "ok").read_bytes()[:-10])
    with pytest.raises(MatapError, match="truncated"):
        read_idx_images(tmp_path / "cut")
    with pytest.raises(MatapError, match="no train-images"):
        load_digits("idx", "train", str(tmp_path))
