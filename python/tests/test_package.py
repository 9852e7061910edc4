"""The Python package against the command line: the same run bit for bit, tensors shared without
a copy, an interrupt that leaves a resumable run, and the CLI's error messages."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch

import microvision as mv
from conftest import cli


def weights_crc(run_dir: pathlib.Path) -> int:
    """The CRC32C of the `last` checkpoint's weights, as its state file records it."""
    return json.loads((pathlib.Path(run_dir) / "checkpoints" / "last.state.json").read_text())["weights_crc32c"]


def only_run(runs: pathlib.Path) -> pathlib.Path:
    (run,) = list(runs.iterdir())
    return run


def test_python_training_equals_the_cli_bit_for_bit(tmp_path, config_file):
    # Two intra-op threads on both sides: the equality must not depend on running single-threaded.
    out = cli("train", "-c", str(config_file), "--set", "train.threads=2")
    assert out.returncode == 0, out.stderr
    cli_run = only_run(tmp_path / "runs")
    cli_run = cli_run.rename(tmp_path / "cli-run")

    run = mv.train(mv.Config.load(config_file, set="train.threads=2"), progress=False)
    assert weights_crc(run.dir) == weights_crc(cli_run)
    cli_eval = json.loads((cli_run / "eval.json").read_text())
    assert run.test["accuracy"] == cli_eval["accuracy"]
    assert list(run.metrics["val_acc"]) == [
        json.loads(l)["acc"] for l in (cli_run / "metrics.jsonl").read_text().splitlines() if '"val"' in l
    ]


def test_a_run_from_python(tmp_path, config_file):
    events = []
    run = mv.train(mv.Config.load(config_file, set={"train.epochs": 1}), progress=events.append)
    assert [e["kind"] for e in events][0] == "start" and events[-1]["kind"] == "end"
    assert any(e["kind"] == "step" for e in events) and any(e["kind"] == "epoch" for e in events)
    assert run.finished and run.config.get("train.epochs") == 1
    assert run.env["seed"] == 7 and len(run.metrics) == 1
    assert run.classes[:2] == ["airplane", "automobile"]

    # Probabilities from uint8 tensors, float tensors and NumPy arrays agree.
    images, labels, classes = mv.data.load("cifar10", split="test", root=run.config.get("data.root"))
    assert images.dtype == torch.uint8 and images.shape == (64, 3, 32, 32) and labels.shape == (64,)
    p = run.predict(images[:8])
    assert p.shape == (8, 10) and torch.allclose(p.sum(1), torch.ones(8))
    assert torch.allclose(run.predict(images[:8].float() / 255), p, atol=1e-5)
    assert torch.equal(run.predict(images[:8].numpy()), p)
    assert torch.equal(run.predict(images[0]), p[0])
    # Evaluation through Python writes the same file as `microvision eval`.
    e = run.eval()
    assert e["accuracy"] == run.test["accuracy"] and pathlib.Path(e["file"]).name == "eval-last.json"
    exported = run.export("torchscript")
    model = torch.jit.load(exported["file"])
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert pathlib.Path(run.report()).exists() and run.plots()

    # Explanations through Python: the library verb of `microvision explain`.
    summary = run.explain(["gradcam", "saliency", "embeddings"], checkpoint="last", perplexity=10, cls="cat")
    assert [m["method"] for m in summary["maps"]] == ["gradcam", "saliency"]
    assert summary["maps"][0]["layer"] == "features.10" and summary["embedding"]["points"] == 64
    assert (run_dir := pathlib.Path(run.dir)) and (run_dir / "plots" / "explain_tsne.png").exists()
    with pytest.raises(mv.ConfigError, match="features.10"):
        run.explain(["gradcam"], layer="nope", checkpoint="last")

    table = mv.compare([run], plot_dir=str(tmp_path))
    assert len(table) == 1 and table["final_acc_pct_mean"][0] == pytest.approx(run.test["accuracy"] * 100)

    # Into W&B afterwards, offline (tests/track_wandb.rs reads such runs back and compares them).
    (synced,) = mv.sync_wandb([run], project="from-python", mode="offline")
    assert synced["finished"] and synced["url"] is None and synced["records"] >= len(run.metrics) * 2 + 1
    assert pathlib.Path(synced["offline_dir"]).is_dir()
    assert (run_dir / "wandb_run_id").read_text() == synced["run_id"]


def test_tensors_cross_without_a_copy():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    back = mv._core.share_tensor(t)
    assert back.data_ptr() == t.data_ptr()
    back[0, 0] = 42.0
    assert t[0, 0] == 42.0


def test_an_interrupt_leaves_a_run_that_resumes_to_the_same_weights(tmp_path, config_file):
    full = mv.train(mv.Config.load(config_file), progress=False)

    def stop_at_step_3(event):
        if event["kind"] == "step" and event["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(mv.Interrupted) as stopped:
        mv.train(mv.Config.load(config_file), progress=stop_at_step_3)
    assert isinstance(stopped.value, KeyboardInterrupt) and "--resume" in str(stopped.value)
    run_dir = pathlib.Path(stopped.value.run_dir)
    assert (run_dir / "checkpoints" / "last.state.json").exists() and not (run_dir / "eval.json").exists()
    resumed = mv.resume(run_dir, progress=False)
    assert weights_crc(resumed.dir) == weights_crc(full.dir)


def test_bad_input_raises_with_the_cli_message(tmp_path, config_file):
    out = cli("train", "-c", str(config_file), "--set", "optim.name=sdg")
    assert out.returncode == 2
    with pytest.raises(mv.ConfigError) as e:
        mv.Config.load(config_file, set=["optim.name=sdg"])
    assert str(e.value) in out.stderr
    with pytest.raises(mv.ConfigError, match="did you mean"):
        mv.Config.from_dict({"optim": {"name": "sdg"}})
    with pytest.raises(mv.CheckpointError, match="does not exist"):
        mv.Run(tmp_path / "nowhere")
    with pytest.raises(mv.DataError):
        mv.data.load("cifar10", root=tmp_path)
    with pytest.raises(TypeError, match="expected a bool, int, float"):
        mv.Config.defaults(set={"train.epochs": object()})


def test_a_config_from_a_dict_equals_the_file(config_file):
    from_file = mv.Config.load(config_file)
    from_dict = mv.Config.from_dict(from_file.to_dict())
    assert from_dict.to_toml() == from_file.to_toml()
    assert from_file.with_set({"train.epochs": 5}).get("train.epochs") == 5


def test_models():
    table = mv.models.list()
    assert {"simple_cnn", "resnet18", "airbench94"} <= set(table["name"])
    model = mv.models.build("resnet18", num_classes=100)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_a_real_sigint_stops_the_training_with_last_saved(config_file):
    """The kernel's stop button sends SIGINT: Python's handler runs at the trainer's next step
    (the GIL is released while it trains), which saves `last` and raises Interrupted."""
    import os
    import signal
    import threading

    def interrupt_soon(event):
        if event["kind"] == "start":
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

    cfg = mv.Config.load(config_file, set={"train.epochs": 500})
    with pytest.raises(mv.Interrupted) as stopped:
        mv.train(cfg, progress=interrupt_soon)
    run_dir = pathlib.Path(stopped.value.run_dir)
    assert (run_dir / "checkpoints" / "last.state.json").exists() and not (run_dir / "eval.json").exists()


def test_a_search_from_python(tmp_path, config_file):
    space = tmp_path / "space.toml"
    space.write_text("optim.lr = { log_float = [0.005, 0.1] }\n")
    study = mv.tune(config_file, space, trials=2, pruner="none", study="py", set={"train.epochs": 1})
    df = study.trials
    assert list(df.index) == [0, 1] and (df.state == "complete").all(), df
    assert df["val_acc"].between(0, 100).all() and "params.optim.lr" in df
    assert all(pathlib.Path(d, "eval.json").exists() for d in df.run_dir)
    assert study.best["number"] in (0, 1) and study.command.startswith("microvision train -c ")
    assert pathlib.Path(study.report()["html"]).exists()
    assert len(study.optuna().trials) == 2  # Optuna's own view of the same study
    again = mv.Study(pathlib.Path(df.run_dir[0]).parent)  # read back from its directory
    assert again.trials.equals(df)


def test_an_interrupted_search_fails_its_trial_and_keeps_the_rest_queued(tmp_path, config_file):
    import os
    import signal
    import threading

    space = tmp_path / "space.toml"
    space.write_text("optim.lr = { log_float = [0.005, 0.1] }\n")
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(mv.Interrupted):
        mv.tune(config_file, space, trials=2, pruner="none", study="stop", set={"train.epochs": 500})
    timer.cancel()
    states = list(mv.Study(tmp_path / "runs" / "stop").trials.state)
    assert states == ["fail", "waiting"], states


def test_mv_train_under_torchrun_trains_one_run_on_two_processes(tmp_path, config_file):
    """`mv.train` in a script that torchrun starts twice: one run directory (rank 0 writes it),
    returned on both ranks, finished with its test evaluation."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(
        "import json, microvision as mv\n"
        f"run = mv.train(mv.Config.load({str(config_file)!r}))\n"
        "print(json.dumps({'run': run.dir}))\n"
    )
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(mv.__file__).parents[1])}
    out = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", str(script)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2 and results[0] == results[1], out.stdout
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [pathlib.Path(results[0]["run"]).name]
    assert "training on 2 processes" in out.stderr
    assert mv.Run(results[0]["run"]).test["accuracy"] >= 0.0
