"""Searching from Python: `tune` runs a study's trials in this process (the command line's
`--workers K` runs several processes), `Study` reads one back as a DataFrame, draws its report,
and hands over Optuna's own `Study` for Optuna's API and plots."""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Mapping

import pandas as pd

from . import _core


def _use_this_python() -> None:
    # The Optuna driver runs in this interpreter unless told otherwise: it has the package's
    # dependencies (optuna among them) when the package does.
    os.environ.setdefault("MICROVISION_PYTHON", sys.executable)


class Study:
    """A tuning study: `Study("runs/demo-demo-space")` (its directory), or a name with the
    storage (`Study("demo", storage="postgresql://...")`)."""

    def __init__(self, study: str | os.PathLike, storage: str | None = None) -> None:
        _use_this_python()
        self._arg = os.fspath(study)
        self._storage = storage
        self.refresh()

    def refresh(self) -> "Study":
        """Reads the study again (trials finish while other workers run)."""
        s = _core.study_read(self._arg, self._storage)
        self.name: str = s["name"]
        self.storage: str = s["storage"]
        self.directions: list[str] = s["directions"]
        self.settings: dict[str, Any] = s["settings"]
        self.importance: list[dict[str, float]] = s["importance"]
        self.command: str | None = s["command"]
        self._trials: list[dict[str, Any]] = s["trials"]
        return self

    @property
    def objectives(self) -> list[str]:
        return list(self.settings.get("objectives") or ["value"])

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: number, state, one column per objective, `params.<key>`,
        test_acc, seconds, run_dir, error."""
        rows = []
        for t in self._trials:
            row: dict[str, Any] = {"number": t["number"], "state": t["state"]}
            for name, value in zip(self.objectives, t["values"] or [None] * len(self.objectives)):
                row[name] = value
            row.update({f"params.{k}": v for k, v in t["params"].items()})
            attrs = t["attrs"]
            row.update(
                test_acc=attrs.get("test_acc"),
                seconds=t["seconds"],
                run_dir=attrs.get("run_dir"),
                error=attrs.get("error"),
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("number") if rows else pd.DataFrame()

    @property
    def best(self) -> dict[str, Any] | None:
        """The best complete trial by the first objective (None before any completes)."""
        done = [t for t in self._trials if t["state"] == "complete" and t["values"]]
        if not done:
            return None
        sign = 1 if not self.directions or self.directions[0] == "maximize" else -1
        return max(done, key=lambda t: sign * t["values"][0])

    def report(self, out: str | os.PathLike | None = None) -> dict[str, Any]:
        """Draws the history, learning-curve, importance and Pareto plots and `report.html`
        (default: the study directory's `report/`); returns `{files, html, command}`."""
        return _core.study_report(self._arg, self._storage, None if out is None else os.fspath(out))

    def optuna(self):
        """The study as Optuna's own `optuna.Study` (its API, `optuna.visualization`)."""
        import optuna

        if "://" in self.storage:
            storage = self.storage
        else:
            path = self.storage.removeprefix("journal:")
            storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
        return optuna.load_study(study_name=self.name, storage=storage)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for t in self._trials:
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        return f"Study({self.name!r}, {', '.join(f'{v} {k}' for k, v in counts.items())})"


def tune(
    config: str | os.PathLike,
    space: str | os.PathLike,
    trials: int | None = None,
    *,
    study: str | None = None,
    storage: str | None = None,
    sampler: str = "tpe",
    pruner: str | None = None,
    objective: str | Iterable[str] = "val_acc",
    timeout: float | None = None,
    seed: int = 0,
    set: Mapping[str, Any] | Iterable[str] | None = None,
    threads: int | None = None,
) -> Study:
    """Searches `space` (a TOML file: per config key a distribution) around the base `config`
    on an Optuna study, training each trial as an ordinary run, and returns the study. The
    arguments are the command line's (`microvision tune --help`); the kernel's interrupt fails
    the running trial and raises `Interrupted`, the queued trials waiting for the next call."""
    _use_this_python()
    objectives = [objective] if isinstance(objective, str) else list(objective)
    name, store = _core.tune(
        os.fspath(config),
        os.fspath(space),
        trials,
        study,
        storage,
        sampler,
        pruner,
        objectives,
        timeout,
        seed,
        set,
        threads,
    )
    return Study(name, store)
