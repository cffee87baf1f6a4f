"""Bad input at the command line: exit code 2, a message naming the field or file, never a
traceback (docs/design.md, "Exit codes")."""

from __future__ import annotations

import pytest
import yaml
from conftest import tiny_raw

from sweeps.cli import main


def fails_with_input_error(capsys, argv: list[str], *named: str) -> str:
    """Run the CLI in-process; assert exit code 2, no traceback and every `named` string in
    the message. Returns stderr."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"exit code {code}; stderr:\n{captured.err}"
    assert "Traceback" not in captured.err
    assert "error" in captured.err.lower()
    for text in named:
        assert text in captured.err, f"{text!r} not in stderr:\n{captured.err}"
    return captured.err


def test_the_tiny_spec_itself_is_valid(capsys, write_spec):
    """The baseline every other case here breaks one field of."""
    spec = write_spec()
    assert main(["validate", str(spec)]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["method"] == "noisy_arl"
    assert resolved["model"]["split"] == "2"


def test_malformed_yaml_names_the_file(capsys, write_spec):
    spec = write_spec(text="name: broken\nmethod: [noisy_arl\ndataset: {name: synthetic\n", name="broken.yaml")
    err = fails_with_input_error(capsys, ["validate", str(spec)], "broken.yaml")
    assert "YAML" in err


def test_spec_that_is_not_a_mapping(capsys, write_spec):
    spec = write_spec(text="- just\n- a list\n", name="list.yaml")
    fails_with_input_error(capsys, ["validate", str(spec)], "list.yaml")


def test_missing_spec_file_names_the_file(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "spec.yaml"
    fails_with_input_error(capsys, ["validate", str(missing)], str(missing), "not found")


@pytest.mark.parametrize("command", ["validate", "trial"])
def test_unknown_method(capsys, write_spec, command):
    spec = write_spec(tiny_raw(method="noisy_arll", params={}))
    err = fails_with_input_error(capsys, [command, str(spec)], "method", "noisy_arll")
    assert "noisy_arl" in err.replace("noisy_arll", "")  # lists the valid choices


@pytest.mark.parametrize("command", ["validate", "trial"])
def test_unknown_dataset(capsys, write_spec, command):
    spec = write_spec(tiny_raw(dataset__name="imagenet_tiny"))
    err = fails_with_input_error(capsys, [command, str(spec)], "dataset.name", "imagenet_tiny")
    assert "synthetic" in err


def test_unknown_backbone(capsys, write_spec):
    spec = write_spec(tiny_raw(model__backbone="resnet1000"))
    err = fails_with_input_error(capsys, ["validate", str(spec)], "model.backbone", "resnet1000")
    assert "small_cnn" in err


def test_split_point_the_backbone_lacks(capsys, write_spec):
    spec = write_spec(tiny_raw(model__split=7))
    err = fails_with_input_error(capsys, ["validate", str(spec)], "model.split", "'7'")
    assert "'4'" in err  # names the split points it does have


def test_split_that_does_not_fit_the_image(capsys, write_spec):
    """small_cnn at split 4 pools 4x4 images to nothing: caught before training."""
    raw = tiny_raw(dataset__options={"train_size": 64, "test_size": 32, "image_size": 4}, model__split=4)
    fails_with_input_error(capsys, ["trial", str(write_spec(raw))], "model", "4x4")


@pytest.mark.parametrize(("command", "spec_args"), [("validate", []), ("trial", []), ("validate", ["--set", "params.sigma=-0.5"])])
def test_negative_sigma(capsys, write_spec, command, spec_args):
    raw = tiny_raw() if spec_args else tiny_raw(params={"sigma": -1.0, "lambda": 0.1})
    fails_with_input_error(capsys, [command, str(write_spec(raw)), *spec_args], "params.sigma")


def test_unknown_param_of_the_method(capsys, write_spec):
    spec = write_spec(tiny_raw(params={"sigma": 1.0, "lamda": 0.1}))
    fails_with_input_error(capsys, ["validate", str(spec)], "params.lamda")


@pytest.mark.parametrize("command", ["validate", "trial"])
def test_an_attribute_the_dataset_lacks_is_named_with_the_real_ones_before_any_data_is_read(capsys, write_spec, monkeypatch, command):
    """Each dataset module declares its attributes, so `validate` (which reads no data) catches
    a task or private attribute the dataset lacks as `trial` does."""
    import trainables.data

    monkeypatch.setattr(trainables.data, "load_dataset", lambda *_: pytest.fail("read data"))
    spec = write_spec(tiny_raw(dataset__task="texture"))
    err = fails_with_input_error(capsys, [command, str(spec)], "dataset.task", "texture")
    assert "shape" in err and "color" in err
    spec = write_spec(tiny_raw(dataset__private="colour"))
    fails_with_input_error(capsys, [command, str(spec)], "dataset.private", "colour")


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("train.epochz=3", "train.epochz"),
        ("trian.epochs=3", "trian.epochs"),
        ("model.split.deep=1", "model.split"),
        ("attacks.leakage=[server_arch, oracle]", "attacks.leakage"),
        ("train.epochs", "train.epochs"),  # no `=`
        ("train.epochs=[1", "train.epochs"),  # value is not YAML
        ("train.epochs=0", "train.epochs"),  # ge=1
    ],
)
def test_bad_set_override(capsys, write_spec, assignment, named):
    fails_with_input_error(capsys, ["validate", str(write_spec()), "--set", assignment], named)


def test_set_override_is_applied(capsys, write_spec):
    """The counterpart of the failures above: a good path really changes the spec."""
    assert main(["validate", str(write_spec()), "--set", "train.epochs=3", "--set", "params.sigma=2.5"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["epochs"] == 3
    assert resolved["params"]["sigma"] == 2.5


def test_dataset_root_that_does_not_exist(capsys, write_spec, tmp_path):
    missing = tmp_path / "no-such-folder"
    fails_with_input_error(capsys, ["trial", str(write_spec(tiny_raw(dataset__root=str(missing))))], "dataset.root", str(missing))


def test_mnist_without_files_and_without_download(capsys, write_spec, tmp_path, monkeypatch):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("PRIVSWEEP_DATA", str(empty))
    raw = tiny_raw(dataset={"name": "mnist", "task": "class", "private": "class", "options": {"download": False}})
    err = fails_with_input_error(capsys, ["trial", str(write_spec(raw))], "MNIST", str(empty / "MNIST" / "raw"))
    assert "dataset.root" in err or "PRIVSWEEP_DATA" in err  # says how to fix it


def test_dataset_option_of_the_wrong_type(capsys, write_spec):
    raw = tiny_raw(dataset__options={"train_size": 64, "test_size": 32, "image_size": "big"})
    fails_with_input_error(capsys, ["trial", str(write_spec(raw))], "dataset.options.image_size", "'big'")


def test_unknown_dataset_option(capsys, write_spec):
    raw = tiny_raw(dataset__options={"train_size": 64, "image_sise": 16})
    fails_with_input_error(capsys, ["trial", str(write_spec(raw))], "dataset.options", "image_sise")


@pytest.mark.parametrize("kind", ["uniform", "loguniform", "int"])
def test_search_space_range_with_lo_above_hi(capsys, write_spec, kind):
    lo, hi = (5, 2) if kind == "int" else (2.0, 0.5)
    raw = {**tiny_raw(), "search_space": {"sigma": {kind: [lo, hi]}}}
    err = fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "search_space", "sigma", "lo > hi")
    assert f"[{hi}, {lo}]" in err  # says how to fix it


def test_search_space_value_invalid_for_the_method(capsys, write_spec):
    """Every bound of a range is checked like a fixed value: sigma must be >= 0."""
    raw = {**tiny_raw(), "search_space": {"sigma": {"uniform": [-1.0, 2.0]}}}
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "search_space.params.sigma", "-1.0")


def test_search_space_file_that_does_not_exist(capsys, write_spec):
    raw = {**tiny_raw(), "search_space": "no_such_space"}
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "search_space", "no_such_space")


def test_smoke_of_a_spec_with_a_non_mapping_section(capsys, write_spec):
    """`--smoke` shrinks sections of the spec; a section written as a scalar is reported as
    a spec error, not a crash inside the shrinking."""
    raw = tiny_raw()
    raw["dataset"] = "synthetic"
    fails_with_input_error(capsys, ["validate", str(write_spec(raw)), "--smoke"], "dataset")
    raw = tiny_raw()
    raw["train"] = 5
    fails_with_input_error(capsys, ["trial", str(write_spec(raw)), "--smoke"], "train")


def test_unknown_top_level_field(capsys, write_spec):
    raw = {**tiny_raw(), "epochs": 3}
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "epochs")


def test_unknown_subcommand_and_missing_argument(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["trial"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "frobnicate" in err


def test_process_exit_code_is_2_without_traceback(sweeps_cli, write_spec, tmp_path):
    """The real process: `python -m sweeps trial` on a spec with an unknown method and on a
    missing file exits 2 with the message on stderr."""
    spec = write_spec(tiny_raw(method="noisy_arll", params={}))
    result = sweeps_cli("trial", str(spec))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "method" in result.stderr and "noisy_arll" in result.stderr
    assert result.stdout == ""


def test_process_exit_code_is_2_for_missing_data(sweeps_cli, write_spec, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    raw = tiny_raw(dataset={"name": "mnist", "task": "class", "private": "class", "options": {"download": False}})
    result = sweeps_cli("trial", str(write_spec(raw)), "--json", env={"PRIVSWEEP_DATA": str(empty)})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(empty / "MNIST" / "raw") in result.stderr
    assert result.stdout == ""


def test_validate_rejects_a_misspelled_objective_as_run_does(capsys, write_spec):
    raw = {**tiny_raw(), "objectives": [{"metric": "utility/acc", "mode": "max"},
                                        {"metric": "privacy/leak_accuracy", "mode": "min"}]}
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "objectives[1].metric",
                           "privacy/leak_accuracy", "did you mean `privacy/leak_acc`?")


def test_a_threat_model_objective_is_valid_where_the_suite_has_an_attacker_of_it(capsys, write_spec):
    raw = {**tiny_raw(), "objectives": [{"metric": "utility/acc", "mode": "max"}, {"metric": "recon/ssim:white_box", "mode": "min"}]}
    raw["attacks"] = {**raw["attacks"], "reconstruction": ["mirror", "whitebox"]}
    assert main(["validate", str(write_spec(raw))]) == 0
    raw["attacks"]["reconstruction"] = ["mirror"]  # no white-box attacker left: no such metric
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "objectives[1].metric", "recon/ssim:white_box",
                           "recon/ssim:query")


def test_validate_rejects_a_launch_storage_pyarrow_cannot_open_as_run_does(capsys, write_spec, monkeypatch):
    monkeypatch.setenv("PRIVSWEEP_STORAGE", "nosuchscheme://bucket/prefix")
    fails_with_input_error(capsys, ["validate", str(write_spec())], "PRIVSWEEP_STORAGE=nosuchscheme://bucket/prefix",
                           "pyarrow cannot open it", "s3://bucket/prefix")


@pytest.mark.parametrize(("where", "typo", "meant"), [
    ((), "serach", "search"),
    (("train",), "epoch", "epochs"),
    (("attacks", "whitebox"), "stpes", "steps"),
])
def test_unknown_spec_key_gets_a_did_you_mean(capsys, write_spec, where, typo, meant):
    raw = tiny_raw()
    section = raw
    for part in where:
        section = section.setdefault(part, {})
    section[typo] = 1
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], ".".join((*where, typo)),
                           f"did you mean `{meant}`?")


def test_unknown_set_path_gets_a_did_you_mean(capsys, write_spec):
    fails_with_input_error(capsys, ["validate", str(write_spec()), "--set", "train.ephocs=3"], "train.ephocs",
                           "did you mean `epochs`?")


def test_spec_path_that_is_a_directory_says_so(capsys, tmp_path):
    (tmp_path / "quickstart.yaml").write_text("name: q\n")
    fails_with_input_error(capsys, ["validate", str(tmp_path)], "is a directory", "quickstart.yaml")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"train__epochs": True}, ["train.epochs", "boolean true"]),
        ({"train__lr": float("inf")}, ["train.lr", "finite"]),
        ({"train__lr": "1e400"}, ["train.lr", "finite"]),  # YAML reads 1e400 as a string; as a float it overflows to inf
        ({"attacks__whitebox__lr": float("nan")}, ["attacks.whitebox.lr", "finite"]),
        ({"params": {"sigma": True, "lambda": 0.01}}, ["params.sigma", "boolean true"]),
        ({"params": {"sigma": float("inf"), "lambda": 0.01}}, ["params.sigma", "number"]),
    ],
)
def test_numbers_are_finite_and_no_boolean_is_a_number(capsys, write_spec, change, named):
    spec = write_spec(tiny_raw(**change))
    fails_with_input_error(capsys, ["validate", str(spec)], *named)


def test_a_spec_that_is_not_utf8_names_the_file(capsys, write_spec):
    spec = write_spec(name="latin1.yaml")
    spec.write_bytes(spec.read_bytes().replace(b"name: ", b"# caf\xe9\nname: ", 1))
    fails_with_input_error(capsys, ["validate", str(spec)], "latin1.yaml", "not UTF-8")


def test_a_search_space_name_cannot_leave_its_folder(capsys, write_spec):
    spec = write_spec({**tiny_raw(), "search_space": "../sweeps/quickstart"})
    fails_with_input_error(capsys, ["validate", str(spec)], "search_space", "outside")


@pytest.mark.parametrize(
    ("tracking", "named"),
    [
        ({"uri": "ftp://example.org/store"}, ["tracking.uri", "ftp://"]),
        ({"uri": "sqlite:///relative/mlflow.db"}, ["tracking.uri", "absolute path"]),
        ({"experiment": "../../../../tmp/x"}, ["tracking.experiment", "outside"]),
        ({"experiment": "/tmp/x"}, ["tracking.experiment", "outside"]),
    ],
)
def test_a_tracking_store_mlflow_lacks_or_an_experiment_outside_home_is_refused(capsys, write_spec, tracking, named):
    spec = write_spec({**tiny_raw(), "tracking": tracking})
    fails_with_input_error(capsys, ["validate", str(spec)], *named)


@pytest.mark.parametrize(("argv", "flag"), [(["run", "--num-samples", "0"], "--num-samples"), (["confirm", "--seeds", "-1"], "--seeds")])
def test_a_count_flag_below_one_is_refused(capsys, write_spec, argv, flag):
    spec = write_spec()
    code = main([argv[0], str(spec), *argv[1:]])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "not >= 1" in err and "Traceback" not in err


def test_a_misspelled_dataset_option_is_refused_at_validate(capsys, write_spec):
    raw = tiny_raw()
    raw["dataset"]["options"] = {**raw["dataset"].get("options", {}), "imgae_size": 16}
    fails_with_input_error(capsys, ["validate", str(write_spec(raw))], "dataset.options", "imgae_size", "image_size")


def test_a_misspelled_domain_kind_gets_a_did_you_mean(capsys, write_spec):
    spec = write_spec({**tiny_raw(), "search_space": {"sigma": {"logunifrom": [0.1, 2.0]}}})
    fails_with_input_error(capsys, ["validate", str(spec)], "search_space.params.sigma", "logunifrom", "did you mean `loguniform`")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"dataset__train_size": 1}, "dataset.train_size"),
        ({"dataset__train_size": 20, "attacks__data": "disjoint", "attacks__disjoint_fraction": 0.99}, "attacks.disjoint_fraction"),
    ],
)
def test_a_train_slice_too_small_to_split_is_refused_at_validate(capsys, write_spec, change, named):
    fails_with_input_error(capsys, ["validate", str(write_spec(tiny_raw(**change)))], named)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_trial_pinned_to_cuda_without_a_gpu_from_ray_is_refused_before_ray(capsys, write_spec, command):
    spec = write_spec(tiny_raw(train__device="cuda", resources__gpu=0))
    fails_with_input_error(capsys, [command, str(spec)], "train.device", "resources.gpu")
