"""The dataset registry is the one list of datasets: paths, loaders, prepare and eval all follow it."""

from __future__ import annotations

import importlib

import pytest

from maed.config import PathsConfig
from maed.data.database import database_filename, parse_database_filename
from maed.data.registry import DATASETS, EVAL_DATASETS, canonical_name, dataset_info, eval_dataset_info
from maed.errors import ConfigError
from maed.paths import resolve_paths


def test_every_reader_module_has_the_reader_interface():
    for info in DATASETS.values():
        if info.reader_module is None:
            continue
        mod = importlib.import_module(info.reader_module)
        assert isinstance(mod.RAW_TREE, str) and callable(mod.find_splits) and callable(mod.read_split), info.name


def test_paths_give_every_dataset_its_default_directory(tmp_path):
    roots = resolve_paths(PathsConfig(DATA_DIR=str(tmp_path)))["dataset_roots"]
    assert roots == {name: str(tmp_path / info.directory) for name, info in DATASETS.items()}
    assert roots["mpii3d"] == str(tmp_path / "mpi_inf_3dhp")


def test_names_aliases_and_evaluation_sets():
    assert canonical_name("COCO2014") == canonical_name("coco") == "coco2014-all"
    assert canonical_name("pw3d") == "3dpw"
    with pytest.raises(ConfigError, match="unknown dataset 'surreal'"):
        canonical_name("surreal")
    with pytest.raises(ConfigError, match="TRAIN.DATASETS_IMG: unknown dataset 'coco'"):
        dataset_info("coco", option="TRAIN.DATASETS_IMG")  # configs take database names only
    assert EVAL_DATASETS == ("3dpw", "mpii3d", "h36m", "synth")
    assert eval_dataset_info("h36m").joint_ids(strict=True) != eval_dataset_info("h36m").joint_ids()
    with pytest.raises(ConfigError, match="--dataset 'insta'"):
        eval_dataset_info("insta")


def test_every_evaluation_set_is_evaluated_on_a_split_its_reader_writes():
    for name in EVAL_DATASETS:
        assert DATASETS[name].eval_split in DATASETS[name].splits, name
    assert DATASETS["mpii3d"].eval_split == "val"  # the MPI-INF-3DHP test set, under the original's name


def test_database_file_names_round_trip():
    for name, info in DATASETS.items():
        for split in info.splits:
            assert parse_database_filename(f"/x/{database_filename(name, split)}") == (name, split)
    assert parse_database_filename("notes.txt") is None
