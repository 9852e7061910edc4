"""microvision's Optuna driver: one long-lived process per tuning worker.

The Rust side (src/tune/optuna.rs) starts it with the project's Python and speaks JSON lines on
stdin/stdout: one request per line, one answer per line ({"ok": true, ...} or {"ok": false,
"error": "..."}). Optuna does the search (samplers, pruners, storages); this file only adapts it:

* open: creates or joins a study. The creator records the budget and the space in the study and
  enqueues exactly N trials (each grid point once for the grid sampler); workers only ever pop
  those, through Optuna's own atomic WAITING -> RUNNING transition, so any number of workers on
  any number of machines leave exactly N trials.
* ask / report / tell: one trial at a time; report answers whether to prune.
* trials / importance: what `microvision tune report` draws.

If stdin closes while a trial runs (the worker was killed), the trial is told FAIL before this
process exits, so a killed worker never leaves a trial RUNNING. RDB storages also keep a
heartbeat, so a whole machine that disappears has its trials failed by the next worker's ask.
"""

import itertools
import json
import os
import signal
import socket
import sys
import time

import optuna
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

ATTR = "microvision"  # prefix of the study's user attributes written here


def this_host():
    """The host as far as process ids go: its name and its pid namespace (containers sharing a
    host name do not share process ids)."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return f"{socket.gethostname()}#{ns}"


HOST = this_host()
OWNER = f"{HOST}:{os.getpid()}"


def storage_for(url):
    """An Optuna storage from a URL (sqlite://, postgresql://, mysql://...) or a journal file."""
    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)
        except ImportError as e:
            raise RuntimeError(
                f"no database driver for {url.split('://')[0]}:// in this Python ({e}); postgresql:// uses psycopg "
                "(in requirements.lock); for MySQL `pip install pymysql` and write mysql+pymysql://..."
            ) from None
    path = url[len("journal:"):] if url.startswith("journal:") else url
    backend = optuna.storages.journal.JournalFileBackend(path)
    return optuna.storages.JournalStorage(backend)


def sampler_for(name, seed, trials):
    if name == "tpe":
        # constant_liar: running trials count as bad guesses, so parallel workers spread out.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "random" or name == "grid":  # grid trials are enqueued with all their values
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        # Several generations even in a small study: a quarter of the budget per generation.
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))
    raise ValueError(f"unknown sampler {name!r}")


def pruner_for(name, epochs):
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        # "auto": the epochs of the first finished trial (train.epochs may itself be searched).
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    raise ValueError(f"unknown pruner {name!r}")


def encoded(p):
    """Whether a categorical parameter's choices are stored as JSON text: Optuna keeps only
    scalars, so a choice that is a list (per-stage widths) is written as its JSON."""
    return any(isinstance(c, (list, dict)) for c in p["choices"])


def choice_values(p):
    return [json.dumps(c) for c in p["choices"]] if encoded(p) else list(p["choices"])


def suggest(trial, p):
    kind, key, low, high, step = p["kind"], p["key"], p.get("low"), p.get("high"), p.get("step")
    if kind == "float":
        return trial.suggest_float(key, low, high, step=step)
    if kind == "log_float":
        return trial.suggest_float(key, low, high, log=True)
    if kind == "int":
        return trial.suggest_int(key, int(low), int(high), step=int(step or 1))
    if kind == "log_int":
        return trial.suggest_int(key, int(low), int(high), log=True)
    v = trial.suggest_categorical(key, choice_values(p))
    return json.loads(v) if encoded(p) else v


def active(p, values):
    """Whether a conditional parameter applies, given the values sampled so far."""
    for key, want in (p.get("when") or {}).items():
        allowed = want if isinstance(want, list) else [want]
        if key not in values or values[key] not in allowed:
            return False
    return True


def grid_points(space):
    """Every combination of the (all discrete, unconditional) parameters."""
    axes = []
    for p in space:
        if p["kind"] == "categorical":
            axes.append(choice_values(p))
        else:
            step = p.get("step") or 1
            n = int(round((p["high"] - p["low"]) / step)) + 1
            axes.append([p["low"] + i * step for i in range(n)])
    names = [p["key"] for p in space]
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


class Driver:
    def __init__(self):
        self.study = None
        self.space = []
        self.trial = None
        self.heartbeat = None
        self.curve = []  # a multi-objective trial's reported values (Optuna keeps none)

    # -- requests ------------------------------------------------------------------------------
    def version(self, _r):
        return {"optuna": optuna.__version__}

    def open(self, r):
        storage = storage_for(r["storage"])
        directions = r["directions"]
        sampler = sampler_for(r["sampler"], r["seed"], r["trials"])
        pruner = pruner_for(r["pruner"], r["epochs"])
        self.space = r["space"]
        created = True
        try:
            self.study = optuna.create_study(
                study_name=r["study"], storage=storage, sampler=sampler, pruner=pruner, directions=directions
            )
        except optuna.exceptions.DuplicatedStudyError:
            created = False
            self.study = optuna.load_study(study_name=r["study"], storage=storage, sampler=sampler, pruner=pruner)
            if r["worker"] == 0:
                # A worker started on its own (another terminal, another machine): a seed of its
                # own, or it would propose the creator's points again.
                sampler.reseed_rng()
        attrs = self.study.user_attrs
        if created:
            self.study.set_user_attr(f"{ATTR}.space", self.space)
            self.study.set_user_attr(f"{ATTR}.objectives", r["objectives"])
            self.study.set_user_attr(f"{ATTR}.base", r["base"])
            self.study.set_user_attr(f"{ATTR}.sampler", r["sampler"])
            self.study.set_user_attr(f"{ATTR}.pruner", r["pruner"])
            self.study.set_user_attr(f"{ATTR}.epochs", r["epochs"])
            self.study.set_user_attr(f"{ATTR}.runs_dir", r["runs_dir"])
            self.study.set_user_attr(f"{ATTR}.config", r["config"])
            self.study.set_user_attr(f"{ATTR}.overrides", r["overrides"])
            if r.get("mlflow_parent"):
                self.study.set_user_attr(f"{ATTR}.mlflow_parent", r["mlflow_parent"])
            self.enqueue(r["sampler"], r["trials"])
            self.study.set_user_attr(f"{ATTR}.trials", r["trials"])
        else:
            attrs = self.wait_ready()
            self.check_same(attrs, r)
            if r["trials"] > attrs[f"{ATTR}.trials"]:  # an explicit extension of the budget
                self.enqueue(r["sampler"], r["trials"] - attrs[f"{ATTR}.trials"])
                self.study.set_user_attr(f"{ATTR}.trials", r["trials"])
        attrs = self.study.user_attrs
        return {"created": created, "trials": attrs[f"{ATTR}.trials"], "mlflow_parent": attrs.get(f"{ATTR}.mlflow_parent")}

    def exists(self, r):
        names = [s.study_name for s in optuna.get_all_study_summaries(storage_for(r["storage"]))]
        return {"exists": r["study"] in names}

    def load(self, r):
        """An existing study, to read (`microvision tune report`)."""
        try:
            self.study = optuna.load_study(study_name=r["study"], storage=storage_for(r["storage"]))
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage_for(r["storage"]))]
            raise RuntimeError(
                f"no study {r['study']!r} in {r['storage']}; it holds: {', '.join(names) or 'no study'}"
            ) from None
        self.space = self.study.user_attrs.get(f"{ATTR}.space", [])
        return {}

    def wait_ready(self):
        """A study just created by another worker gets its attributes a moment later."""
        for _ in range(3000):
            attrs = self.study.user_attrs
            if f"{ATTR}.trials" in attrs:
                return attrs
            time.sleep(0.2)
        raise RuntimeError(
            f"study {self.study.study_name!r} exists but holds no budget after 10 minutes: it was not made by "
            "microvision tune, or its creator was stopped while making it; choose another --study name"
        )

    def check_same(self, attrs, r):
        checked = [("space", "search space"), ("objectives", "objectives"), ("sampler", "sampler"),
                   ("pruner", "pruner"), ("epochs", "train.epochs")]
        for key, what in checked:
            if f"{ATTR}.{key}" in attrs and attrs[f"{ATTR}.{key}"] != r[key]:
                raise RuntimeError(
                    f"study {r['study']!r} already exists with another {what} "
                    f"({json.dumps(attrs.get(f'{ATTR}.{key}'))}); joining it would mix two searches: "
                    "use the same settings or another --study name"
                )

    def enqueue(self, sampler, n):
        if sampler == "grid":
            for params in grid_points(self.space):
                self.study.enqueue_trial(params, skip_if_exists=False)
            return
        for _ in range(n):
            self.study.enqueue_trial({}, skip_if_exists=False)

    def ask(self, _r):
        self.fail_abandoned()
        trial_id = self.study._pop_waiting_trial_id()  # Optuna's atomic claim (Study.ask does the same)
        if trial_id is None:
            return {"trial": None}
        self.trial = optuna.Trial(self.study, trial_id)
        self.trial.set_user_attr(f"{ATTR}.worker", OWNER)
        self.heartbeat = optuna.storages._heartbeat.get_heartbeat_thread(trial_id, self.study._storage)
        self.heartbeat.start()
        values = {}
        for p in self.space:
            if not active(p, values):
                continue
            values[p["key"]] = suggest(self.trial, p)
        return {"trial": self.trial.number, "params": values}

    def report(self, r):
        if len(self.study.directions) > 1:  # Optuna keeps no curves for several objectives
            self.curve.append([r["step"], r["value"]])
            return {"prune": False}
        self.trial.report(r["value"], r["step"])
        return {"prune": bool(r["prune"] and self.trial.should_prune())}  # numpy's bool is not JSON

    def tell(self, r):
        attrs = dict(r.get("attrs") or {})
        if self.curve:
            attrs["curve"] = self.curve
        for key, value in attrs.items():
            self.trial.set_user_attr(f"{ATTR}.{key}", value)
        state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}[r["state"]]
        values = r.get("values") if state == TrialState.COMPLETE else None
        try:
            self.study.tell(self.trial, values=values, state=state)
        except ValueError as e:  # values Optuna refuses: the trial fails, the search goes on
            self.trial.set_user_attr(f"{ATTR}.error", f"Optuna refused the values {values}: {e}")
            self.study.tell(self.trial, state=TrialState.FAIL)
        self.stop_heartbeat()
        self.trial = None
        self.curve = []
        return {}

    def trials(self, _r):
        out = []
        for t in self.study.get_trials(deepcopy=False):
            out.append(
                {
                    "number": t.number,
                    "state": t.state.name.lower(),
                    "values": t.values,
                    "params": {k: self.decoded(k, v) for k, v in t.params.items()},
                    "intermediate": sorted(t.intermediate_values.items())
                    or [tuple(p) for p in t.user_attrs.get(f"{ATTR}.curve", [])],
                    "attrs": {k[len(ATTR) + 1:]: v for k, v in t.user_attrs.items() if k.startswith(ATTR + ".")},
                    "seconds": t.duration.total_seconds() if t.duration else None,
                }
            )
        attrs = {k[len(ATTR) + 1:]: v for k, v in self.study.user_attrs.items() if k.startswith(ATTR + ".")}
        return {"trials": out, "study": attrs, "directions": [d.name.lower() for d in self.study.directions]}

    def decoded(self, key, value):
        p = next((p for p in self.space if p["key"] == key), None)
        return json.loads(value) if p is not None and p["kind"] == "categorical" and encoded(p) else value

    def importance(self, _r):
        out = []
        for i in range(len(self.study.directions)):
            try:
                imp = optuna.importance.get_param_importances(self.study, target=lambda t, i=i: t.values[i])
                out.append({k: float(v) for k, v in imp.items()})
            except Exception as e:  # too few complete trials, a single value...: the report goes on
                out.append({"error": str(e)})
        return {"importance": out}

    # -- failure handling ----------------------------------------------------------------------
    def fail_abandoned(self):
        """Fails RUNNING trials whose worker is gone: stale heartbeats (RDB storages), and
        workers of this host whose process no longer exists."""
        optuna.storages.fail_stale_trials(self.study)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.user_attrs.get(f"{ATTR}.worker", "")
            name, _, pid = owner.rpartition(":")
            if name == HOST and pid.isdigit() and not pid_alive(int(pid)):
                try:
                    self.study._storage.set_trial_user_attr(
                        t._trial_id, f"{ATTR}.error", f"its worker (pid {pid}) ended mid-trial"
                    )
                    self.study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass  # another worker here failed it first

    def abandon(self, why):
        if self.trial is not None:
            try:
                self.trial.set_user_attr(f"{ATTR}.error", why)
                self.study.tell(self.trial, state=TrialState.FAIL)
            finally:
                self.stop_heartbeat()
                self.trial = None

    def stop_heartbeat(self):
        if self.heartbeat is not None:
            self.heartbeat.join()
            self.heartbeat = None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main():
    # Ctrl-C and SIGTERM reach the whole process group: the worker decides what they mean (fail
    # the trial, stop) and tells this process; dying here would leave the trial RUNNING.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    driver = Driver()
    out = sys.stdout
    try:
        for line in sys.stdin:
            try:
                r = json.loads(line)
                answer = getattr(driver, r["op"])(r)
                answer["ok"] = True
                text = json.dumps(answer, default=float)  # numpy scalars
            except Exception as e:  # every failure is an answer; the Rust side names the request
                text = json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})
            out.write(text + "\n")
            out.flush()
    except (BrokenPipeError, OSError):
        pass  # the worker is gone
    finally:
        # End of input with a trial running: the worker was killed.
        driver.abandon("its worker process ended mid-trial (killed?)")


if __name__ == "__main__":
    main()
