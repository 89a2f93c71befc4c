"""Chunked extraction: resuming a killed run, shards in separate processes, and the merge's checks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipprobe.core.errors import RunError, UsageError
from clipprobe.features import extract as extract_module
from clipprobe.features import extractors as extractors_module
from clipprobe.features.cache import FeatureCache
from clipprobe.features.chunks import ChunkStore, Shard, parse_shard, shard_plan
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features, merge_features

SHARD_ERROR = "--shard expects I/N with 0 <= I < N, e.g. 0/4; got '{}'"


def test_parse_shard_reads_the_flag_or_the_launcher():
    assert parse_shard("1/4", environ={}) == Shard(1, 4)
    assert parse_shard(None, environ={}) is None
    assert parse_shard(None, environ={"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2)
    assert parse_shard(None, environ={"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert parse_shard("0/3", environ={"RANK": "1", "WORLD_SIZE": "2"}) == Shard(0, 3)  # the flag wins
    for bad in ("4/4", "a/b", "1-4", "-1/2"):
        with pytest.raises(UsageError) as error:
            parse_shard(bad, environ={})
        assert str(error.value) == SHARD_ERROR.format(bad)
    with pytest.raises(UsageError, match=r"^RANK='x' and WORLD_SIZE='2' do not name a shard"):
        parse_shard(None, environ={"RANK": "x", "WORLD_SIZE": "2"})


def test_shards_split_the_chunks_of_every_split_round_robin(tmp_path):
    stores = {"train": ChunkStore(tmp_path / "a", 25, 10), "test": ChunkStore(tmp_path / "b", 5, 10)}
    plans = [shard_plan(stores.items(), Shard(i, 2)) for i in range(2)]
    assert plans == [[("train", 0, 10), ("train", 20, 25)], [("train", 10, 20), ("test", 0, 5)]]
    assert sorted(plans[0] + plans[1]) == sorted(shard_plan(stores.items(), None))


@pytest.fixture
def tiny_config(tiny_model):
    return ExtractorConfig(model=tiny_model, pretrained="random", batch_size=8)


def test_a_killed_extraction_recomputes_only_the_missing_chunks(tiny_world, tiny_config, tmp_path, monkeypatch):
    whole = extract_features(tiny_world, tiny_config, cache=FeatureCache(tmp_path / "whole"), chunk_rows=8)
    real = extractors_module.BatchExtractor.encode_rows
    calls = []

    def dies_at_the_fourth_chunk(self, split, start, stop, *args, **kwargs):
        calls.append((len(split), start, stop))
        if len(calls) == 4:
            raise KeyboardInterrupt  # what a kill looks like from inside: nothing after this line runs
        return real(self, split, start, stop, *args, **kwargs)

    monkeypatch.setattr(extractors_module.BatchExtractor, "encode_rows", dies_at_the_fourth_chunk)
    cache = FeatureCache(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_world, tiny_config, cache=cache, chunk_rows=8)
    assert len(list((tmp_path / "resumed").rglob("rows-*.json"))) == 3
    before = list(calls)
    calls.clear()
    monkeypatch.setattr(
        extractors_module.BatchExtractor,
        "encode_rows",
        lambda self, split, start, stop, *a, **k: (
            calls.append((len(split), start, stop)) or real(self, split, start, stop, *a, **k)
        ),
    )
    resumed = extract_features(tiny_world, tiny_config, cache=cache, chunk_rows=8)
    # train 60 rows = 8 chunks, validation 30 = 4, test 30 = 4: 16 in all, 3 kept from the killed run.
    assert len(calls) == 16 - 3 and not set(calls) & set(before[:3])
    for split in whole.arrays:
        assert np.array_equal(np.asarray(resumed.arrays[split]), np.asarray(whole.arrays[split]))
    assert not list((tmp_path / "resumed").rglob("*.parts"))  # the parts are gone once assembled
    assert resumed.meta["keys"] == whole.meta["keys"]


def test_merge_names_missing_damaged_and_foreign_chunks(tiny_world, tiny_config, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    extract_module.extract_shard(tiny_world, tiny_config, Shard(0, 2), cache=cache, chunk_rows=8)
    with pytest.raises(RunError, match=r"^4 of 8 chunks missing in .*\.parts \(rows 8-16, 24-32, 40-48, 56-60\)$"):
        merge_features(tiny_world, tiny_config, cache=cache, chunk_rows=8)
    extract_module.extract_shard(tiny_world, tiny_config, Shard(1, 2), cache=cache, chunk_rows=8)
    chunk = next(p for p in (tmp_path / "cache").rglob("rows-0000000000-0000000008.npy"))
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-4] + b"\0\0\0\0")
    with pytest.raises(RunError, match=r"is damaged .* delete it and extract again: only that chunk is recomputed$"):
        merge_features(tiny_world, tiny_config, cache=cache, chunk_rows=8)
    chunk.write_bytes(good)
    (chunk.parent / "rows-0000000000-0000000005.json").write_text("{}")  # a chunk cut with another --chunk-rows
    with pytest.raises(RunError, match=r"holds chunks of another layout \(rows-0000000000-0000000005\.json\)"):
        merge_features(tiny_world, tiny_config, cache=cache, chunk_rows=8)
    (chunk.parent / "rows-0000000000-0000000005.json").unlink()
    merged = merge_features(tiny_world, tiny_config, cache=cache, chunk_rows=8)
    whole = extract_features(tiny_world, tiny_config, cache=FeatureCache(tmp_path / "whole"), chunk_rows=8)
    for split in whole.arrays:
        assert np.array_equal(np.asarray(merged.arrays[split]), np.asarray(whole.arrays[split]))


def _photos(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("red", "green"):
        (root / name).mkdir(parents=True)
        for i in range(15):
            pixels = rng.integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def _clipprobe(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    environment.update({"CLIPPROBE_HOME": str(home), **(env or {})})
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clipprobe",
            "extract",
            "--dataset",
            "imagefolder:photos",
            "--model",
            "mini-clip",
            "--pretrained",
            "random",
            "--batch-size",
            "4",
            "--chunk-rows",
            "4",
            *args,
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def _arrays(home: Path) -> dict[str, np.ndarray]:
    """The assembled cache entries (not the chunks in their .parts folders)."""
    return {p.stem: np.load(p) for p in (home / "features").rglob("*.npy") if p.parent.suffix != ".parts"}


@pytest.mark.slow
def test_two_shards_in_two_processes_merge_to_the_single_process_features(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "photos")
    # Shard 0 from the flag, shard 1 from the launcher's variables (as torchrun sets them), side by side.
    shards = [
        _clipprobe(tmp_path / "sharded", "--shard", "0/2"),
        _clipprobe(tmp_path / "sharded", env={"RANK": "1", "WORLD_SIZE": "2"}),
    ]
    single = _clipprobe(tmp_path / "single")
    outcomes = [_finish(p) for p in shards]
    for code, _, err in outcomes:
        assert code == 0, err
    assert "shard 0/2: train: 3 chunks computed" in outcomes[0][1]
    assert "shard 1/2: train: 3 chunks computed" in outcomes[1][1]
    assert not _arrays(tmp_path / "sharded")  # nothing assembled yet: only parts
    code, out, err = _finish(_clipprobe(tmp_path / "sharded", "--merge"))
    assert code == 0, err
    assert _finish(single)[0] == 0
    merged, whole = _arrays(tmp_path / "sharded"), _arrays(tmp_path / "single")
    assert sorted(merged) == sorted(whole) and len(merged) == 3
    for key in whole:
        assert np.array_equal(merged[key], whole[key])


def test_cli_merge_before_every_shard_is_done_fails_with_the_missing_rows(tiny_model, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from clipprobe.cli.app import app

    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "photos")
    args = [
        "extract",
        "--dataset",
        "imagefolder:photos",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--chunk-rows",
        "4",
    ]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--shard", "1/2"])
    assert result.exit_code == 0, result.output
    assert "shard 1/2: train: 3 chunks computed" in result.output
    result = runner.invoke(app, [*args, "--merge"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: 3 of 6 chunks missing in ")
    for extra, message in [
        (["--merge", "--shard", "0/2"], "Error: --merge assembles every shard: give it without --shard"),
        (
            ["--shard", "0/2", "--refresh"],
            "Error: --refresh would delete the other shards' chunks: give it without --shard (or RANK/WORLD_SIZE)",
        ),
        (["--shard", "2/2"], "Error: " + SHARD_ERROR.format("2/2")),
    ]:
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 2 and result.output.strip() == message
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, args)  # the launcher's variables pick shard 0
    assert result.exit_code == 0 and "shard 0/2: train: 3 chunks computed" in result.output
    monkeypatch.delenv("WORLD_SIZE")
    result = runner.invoke(app, [*args, "--merge"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^tiny-clip/random train: 21 x 16 \(extracted\)$", result.output, re.M)


def test_chunks_assemble_in_row_order_and_an_empty_split_too(tmp_path):
    store = ChunkStore(tmp_path / "parts", 10, 4)
    for start, stop in reversed(store.ranges):  # written in any order, as shards finish
        store.write(start, stop, np.full((stop - start, 3), start, dtype=np.float32))
    assert np.asarray(store.assemble(tmp_path / "x.npy"))[:, 0].tolist() == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    with pytest.raises(RunError, match=r"^Chunk rows 0-4 came out with 3 rows$"):
        store.write(0, 4, np.zeros((3, 3), dtype=np.float32))
    assert ChunkStore(tmp_path / "empty", 0, 4).assemble(tmp_path / "e.npy").shape == (0, 0)
