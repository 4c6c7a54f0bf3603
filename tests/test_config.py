"""The config system: original YAML files, presets, overrides, and clear errors."""

from pathlib import Path

import pytest

from maed.config import Config, load_config, preset_names
from maed.errors import ConfigError

REPO = Path(__file__).parents[1]


def test_original_stage2_yaml_loads_unchanged():
    cfg = load_config(REPO / "configs" / "config_stage2.yaml")
    assert cfg.MODEL.ENCODER.SPA_TEMP_MODE == "parallel" and cfg.MODEL.ENCODER.BACKBONE == "ste"
    assert cfg.TRAIN.DATASETS_3D == ["3dpw", "mpii3d", "h36m"]
    assert cfg.TRAIN.OPTIM.WD == pytest.approx(1e-5) and cfg.TRAIN.OPTIM.MILESTONES == [60, 90]
    assert cfg.LOSS.KP_3D_W == 600.0 and cfg.DATASET.SIZE_JITTER == 0.0  # '0.' in YAML
    assert cfg.OUTPUT_DIR == "results/"


def test_original_stage1_yaml_keeps_its_cnn_encoder():
    cfg = load_config(REPO / "configs" / "config_stage1.yaml")
    assert cfg.MODEL.ENCODER.BACKBONE == "cnn" and cfg.TRAIN.BATCH_SIZE_IMG == 128
    assert cfg.TRAIN.DATASETS_2D == [] and "h36m" in cfg.TRAIN.DATASETS_IMG


def test_presets_and_base_chain():
    assert {"stage1", "stage2", "maed", "hmr"} <= set(preset_names())
    hmr = load_config("hmr")
    assert (hmr.MODEL.ENCODER.BACKBONE, hmr.MODEL.DECODER.BACKBONE) == ("cnn", "iterative")
    assert hmr.TRAIN.DATASETS_3D == [] and hmr.TRAIN.DATASETS_2D == []  # images only, T = 1
    s1 = load_config("stage1")
    assert (s1.MODEL.ENCODER.BACKBONE, s1.MODEL.ENCODER.SPA_TEMP_MODE) == ("ste", "vanilla")
    assert s1.LOSS.KP_2D_W == 300.0  # inherited from stage2 through _BASE_


def test_overrides_are_typed():
    cfg = load_config(
        "stage2",
        [
            "TRAIN.BATCH_SIZE_IMG=32",
            "TRAIN.OPTIM.LR=1e-3",
            "DEBUG=false",
            "TRAIN.DATASETS_2D=[insta]",
            "PATHS.DATASET_ROOTS={3dpw: /x}",
        ],
    )
    assert cfg.TRAIN.BATCH_SIZE_IMG == 32 and isinstance(cfg.TRAIN.BATCH_SIZE_IMG, int)
    assert cfg.TRAIN.OPTIM.LR == pytest.approx(1e-3) and cfg.DEBUG is False
    assert cfg.TRAIN.DATASETS_2D == ["insta"] and cfg.PATHS.DATASET_ROOTS == {"3dpw": "/x"}


@pytest.mark.parametrize(
    "override,match",
    [
        ("TRAIN.BATCH_SIZE_IMGS=3", "unknown config key TRAIN.BATCH_SIZE_IMGS"),
        ("TRAIN.BATCH_SIZE_IMG=many", "expected int"),
        ("TRAIN.BATCH_SIZE_IMG", "expected KEY=VALUE"),
        ("MODEL=3", "expected a mapping"),
    ],
)
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_unknown_key_in_file_names_the_file(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("MODEL:\n  ENCODER:\n    SPA_TEMP_MOD: parallel\n")
    with pytest.raises(ConfigError, match=r"MODEL\.ENCODER\.SPA_TEMP_MOD in .*exp\.yaml"):
        load_config(f)
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_config(tmp_path / "missing.yaml")


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path):
    """YAML itself keeps the last of two equal keys: a second DATASET block would silently drop the first's keys."""
    path = tmp_path / "twice.yaml"
    path.write_text("DATASET:\n  WIDTH: 96\nMODEL:\n  BODY_MODEL: anny\nDATASET:\n  SEQLEN: 8\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml.*'DATASET' appears twice.*line 1.*line 5"):
        load_config(path)


def test_every_preset_loads():
    from maed.config import preset_names

    assert {"stage1", "stage2", "maed", "hmr", "synth_tiny"} <= set(preset_names())
    for name in preset_names():
        load_config(name)
    tiny = load_config("synth_tiny")  # its architecture and its recipe both reach the config
    assert (tiny.DATASET.WIDTH, tiny.MODEL.ENCODER.EMBED_DIM, tiny.TRAIN.DATASETS_3D) == (96, 256, ["synth"])


def test_dump_round_trips(tmp_path):
    cfg = load_config("stage2", ["TRAIN.BATCH_SIZE_3D=2"])
    cfg.dump(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and isinstance(again, Config)


# ------------------------------------------------------------------------------------------ one home per default
def test_settings_objects_default_to_the_schema():
    """``X()`` and ``X.from_config(Config())`` are the same object: the schema is the one home of each default."""
    from maed.data.loaders import TrainDataSettings
    from maed.data.transforms import ClipAugmentation
    from maed.train.losses import MAEDLoss
    from maed.train.optim import TrainSettings

    cfg = Config()
    assert MAEDLoss() == MAEDLoss.from_config(cfg.LOSS)
    assert MAEDLoss().kp_2d_weight == 60.0  # the original config.py's, not the paper's 300
    assert TrainSettings() == TrainSettings.from_config(cfg)
    assert ClipAugmentation() == ClipAugmentation.from_config(cfg.DATASET)
    assert TrainDataSettings() == TrainDataSettings.from_config(cfg)
    assert TrainDataSettings().augmentation == ClipAugmentation()


def test_keyword_defaults_are_the_schema_values():
    """Functions and constructors taking a setting the schema has use the schema's value as their default."""
    import inspect

    from maed.data.datasets import VideoDataset
    from maed.data.loaders import build_eval_dataset, build_eval_loader
    from maed.eval.evaluator import Evaluator
    from maed.eval.protocol import EvalSettings
    from maed.eval.run import EvalJob
    from maed.models.windows import predict_windows
    from maed.train.validation import Validator

    cfg = Config()
    schema = {
        "seqlen": cfg.EVAL.SEQLEN,
        "frame_step": cfg.EVAL.INTERPOLATION,
        "sample_pool": cfg.EVAL.SAMPLE_POOL,
        "batch_size": cfg.EVAL.BATCH_SIZE,
        "protocol": cfg.EVAL.PROTOCOL,
        "num_workers": cfg.NUM_WORKERS,
        "width": cfg.DATASET.WIDTH,
        "height": cfg.DATASET.HEIGHT,
    }
    video = {
        "seqlen": cfg.DATASET.SEQLEN,
        "sample_pool": cfg.DATASET.SAMPLE_POOL,
        "overlap": cfg.DATASET.OVERLAP,
        "random_start": cfg.DATASET.RANDOM_START,
        "random_sample": cfg.DATASET.RANDOM_SAMPLE,
    }
    checked = 0
    for fn, expected in (
        (predict_windows, schema),
        (Evaluator.__init__, schema),
        (EvalJob.__init__, schema),
        (EvalSettings.__init__, schema),
        (build_eval_loader, schema),
        (build_eval_dataset, schema),
        (Validator.__init__, schema),
        (VideoDataset.__init__, video),
    ):
        for name, param in inspect.signature(fn).parameters.items():
            if name in expected and param.default is not inspect.Parameter.empty:
                assert param.default == expected[name], f"{fn.__qualname__}({name}={param.default!r})"
                checked += 1
    assert checked >= 20


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("stage, deliberate", [("stage2", set()), ("stage1", {"MODEL.ENCODER.BACKBONE"})])
def test_presets_state_the_papers_recipe(stage, deliberate):
    """The shipped presets train as the authors' YAML files do (stage 1 keeps the stage-2 encoder, on purpose)."""
    preset = _flat(load_config(stage).to_dict())
    authors = _flat(load_config(REPO / "configs" / f"config_{stage}.yaml").to_dict())
    differ = {k for k in preset if preset[k] != authors[k]}
    assert differ - {"DEBUG", "DEBUG_FREQ", "EXP_NAME", "OUTPUT_DIR"} == deliberate


# ------------------------------------------------------------------------------------------ declared ranges
@pytest.mark.parametrize(
    "override, match",
    [
        ("TRAIN.OPTIM.LR=-1", r"TRAIN\.OPTIM\.LR=-1\.0: expected a number >= 0"),
        ("TRAIN.OPTIM.WD=-1e-4", r"TRAIN\.OPTIM\.WD=-0\.0001: expected a number >= 0"),
        ("TRAIN.OPTIM.EPS=0", r"TRAIN\.OPTIM\.EPS=0\.0: expected a number > 0"),
        ("TRAIN.OPTIM.EPS=-1e-8", r"TRAIN\.OPTIM\.EPS"),
        ("TRAIN.OPTIM.LR=.inf", r"TRAIN\.OPTIM\.LR=inf: expected a finite number"),
        ("DATASET.RANDOM_FLIP=5", r"DATASET\.RANDOM_FLIP=5\.0: expected a number in \[0, 1\] \(a probability\)"),
        ("DATASET.OVERLAP=1.5", r"DATASET\.OVERLAP=1\.5: .*\[0, 1\) or an integer stride"),
        ("DATASET.OVERLAP=-0.5", r"DATASET\.OVERLAP=-0\.5"),
        ("LOSS.KP_3D_W=-1", r"LOSS\.KP_3D_W=-1\.0"),
        ("TRAIN.DATASETS_3D=[3dpw, 3dpww]", r"TRAIN\.DATASETS_3D=.*item '3dpww': expected one of '3dpw'"),
        ("TRAIN.DATASET_EVAL=insta", r"TRAIN\.DATASET_EVAL='insta'"),
        ("TRAIN.OPTIM.OPTIM=rmsprop", r"TRAIN\.OPTIM\.OPTIM='rmsprop': expected one of 'adam', 'sgd'"),
        ("MODEL.BODY_RIG=cmu_mb", r"MODEL\.BODY_RIG='cmu_mb': SMPL has one rig"),
        ("DATASET.RANDOM_SAMPLE=true", r"RANDOM_START and DATASET\.RANDOM_SAMPLE"),  # stage2 starts at random
        ("EVAL.INTERPOLATION=3", r"EVAL\.INTERPOLATION=3: a 128-frame window keeps 43 frames"),
        ("PATHS.DATASET_ROOTS={sinth: /x}", r"PATHS\.DATASET_ROOTS\.sinth: unknown dataset 'sinth'; expected one of"),
        ("PATHS.DATASET_ROOTS={synth: }", r"PATHS\.DATASET_ROOTS\.synth is empty"),
    ],
)
def test_values_out_of_their_declared_range_are_refused_when_the_config_is_built(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("stage2", [override])


def test_a_flow_mapping_without_a_space_is_named_as_one_key(tmp_path):
    """``{synth:/x}`` is YAML for one key 'synth:/x' with no value: the message says so, and how to write it."""
    expected = r"key 'synth:/x'.*one key.*colon.*space.*'\{synth: /x\}'"
    with pytest.raises(ConfigError, match=expected):
        load_config("stage2", ["PATHS.DATASET_ROOTS={synth:/x}"])
    path = tmp_path / "exp.yaml"
    path.write_text("_BASE_: stage2\nPATHS:\n  DATASET_ROOTS: {synth:/x}\n")
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_values_at_the_edges_of_their_ranges_are_accepted():
    cfg = load_config(
        "stage2",
        [
            "DATASET.OVERLAP=8",  # an integer stride, the original's rule for 3DPW
            "DATASET.RANDOM_FLIP=1",
            "TRAIN.OPTIM.LR=0",
            "TRAIN.OPTIM.OPTIM=SGD",  # the code reads it case-insensitively
            "TRAIN.DATASET_EVAL=",  # no validation
            "PATHS.DATASET_ROOTS={synth: /x}",
            "MODEL.BODY_MODEL=anny",
            "MODEL.BODY_RIG=cmu_mb",
            "EVAL.INTERPOLATION=8",
        ],
    )
    assert (cfg.DATASET.OVERLAP, cfg.TRAIN.OPTIM.OPTIM, cfg.PATHS.DATASET_ROOTS) == (8.0, "SGD", {"synth": "/x"})


def test_every_problem_is_named_in_one_message():
    with pytest.raises(ConfigError) as e:
        load_config("stage2", ["TRAIN.OPTIM.LR=-1", "DATASET.RANDOM_FLIP=5"])
    assert "TRAIN.OPTIM.LR" in str(e.value) and "DATASET.RANDOM_FLIP" in str(e.value)


def test_a_config_changed_in_code_is_checked_by_validate():
    cfg = Config()
    cfg.validate()
    cfg.TRAIN.OPTIM.LR = -1.0
    with pytest.raises(ConfigError, match="TRAIN.OPTIM.LR"):
        cfg.validate()


def test_every_number_and_string_of_the_schema_declares_its_values_or_is_free_on_purpose():
    """The schema is the one place for ranges: a new number or choice key without a check shows up here."""
    import dataclasses

    free = {
        "DEBUG_FREQ",  # accepted and not used
        "SEED_VALUE",  # < 0: a random seed
        "TRAIN.NUM_ITERS_PER_EPOCH",  # <= 0: the length of the first stream
        "MODEL.ENCODER.BACKBONE_WIDTH",  # a rule: a multiple of 32 for the ste encoder
        "MODEL.BODY_RIG",  # a rule: depends on MODEL.BODY_MODEL
        "DEVICE",  # checked against the devices present (maed.utils.device)
        # names of files and folders, free text
        "KEYPOINTS.LANDMARK_MAP",
        "OUTPUT_DIR",
        "EXP_NAME",
        "LOGDIR",
        "TRAIN.RESUME",
        "TRAIN.PRETRAINED",
        "MODEL.ENCODER.INIT_WEIGHTS",
        "PATHS.DATA_DIR",
        "PATHS.DB_DIR",
        "PATHS.BODY_MODEL_DIR",
    }

    def unchecked(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from unchecked(value, f"{prefix}{f.name}.")
            elif not isinstance(value, (bool, dict)) and "check" not in f.metadata:
                yield f"{prefix}{f.name}"

    assert set(unchecked(Config())) == free


def test_the_schema_choices_are_what_the_code_implements():
    import maed.models
    from maed.config import ATTENTION_MODES, DECODERS, ENCODERS, POOLS
    from maed.models.attention import ATTENTION_MODES as implemented_modes
    from maed.models.ste import POOLS as implemented_pools

    assert ATTENTION_MODES == implemented_modes and POOLS == implemented_pools
    assert (ENCODERS, DECODERS) == (maed.models.ENCODERS, maed.models.DECODERS)


def test_debug_keys_are_accepted_and_read_by_nothing():
    """The authors' YAML files set DEBUG and DEBUG_FREQ; they load, nothing reads them, and ORIGINAL.md says so."""
    cfg = load_config(REPO / "configs" / "config_stage2.yaml", ["DEBUG=true", "DEBUG_FREQ=7"])
    assert (cfg.DEBUG, cfg.DEBUG_FREQ) == (True, 7)
    package = REPO / "src" / "maed"
    readers = [p for p in package.rglob("*.py") if p.name != "config.py" and "DEBUG" in p.read_text()]
    assert readers == []
    original = (REPO / "docs" / "ORIGINAL.md").read_text()
    assert "`DEBUG` and `DEBUG_FREQ`" in original and "nothing here reads them" in original
