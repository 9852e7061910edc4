"""The W&B side of microvision's W&B sink: one process per run, holding a wandb run.

Spoken to in JSON lines on stdin; each answer is one JSON line on the protocol channel (the
original stdout; anything wandb prints goes to stderr instead). Requests:
  {"op": "version"}                                  -> {"wandb": "0.31.0"}
  {"op": "init", "project", "entity", "mode", "id", "name", "dir", "config", "tags"}
                                                     -> {"id", "url", "mode", "offline_dir"}
  {"op": "config", "values": {...}}                  the flattened config
  {"op": "log", "step": N, "values": {...}}          metrics at optimizer step N
  {"op": "image", "step": N, "key": K, "path": P}    a plot, as a wandb.Image
  {"op": "file", "path": P, "base": B}               a file of the run directory (run.save)
  {"op": "finish", "exit_code": 0}                   ends the run
End of input without "finish" ends the run with exit code 1 (W&B shows it failed): training
stopped by an error or Ctrl-C. SIGINT is ignored here: the trainer handles Ctrl-C and then
closes our input, so that the run's last records still reach W&B.
"""
import json
import os
import signal
import sys
import traceback

signal.signal(signal.SIGINT, signal.SIG_IGN)
proto = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # wandb's own prints must not mix with the answers
os.environ.setdefault("WANDB_SILENT", "true")


def answer(**fields):
    proto.write(json.dumps({"ok": True, **fields}) + "\n")
    proto.flush()


def refuse(message):
    proto.write(json.dumps({"ok": False, "error": message}) + "\n")
    proto.flush()


try:
    import wandb
except ImportError as e:
    wandb = None
    missing = str(e)

run = None


def init(req):
    global run
    settings = wandb.Settings(console="off", silent=True, x_disable_stats=True)
    run = wandb.init(
        project=req["project"],
        entity=req.get("entity") or None,
        mode=req["mode"],
        id=req["id"],
        resume="allow",
        name=req.get("name"),
        dir=req["dir"],
        config=req.get("config") or {},
        tags=req.get("tags") or None,
        settings=settings,
    )
    offline = run.settings.mode == "offline" or req["mode"] == "offline"
    return {
        "id": run.id,
        "url": None if offline else run.url,
        "mode": "offline" if offline else "online",
        "offline_dir": os.path.dirname(run.dir) if offline else None,
    }


def handle(req):
    op = req["op"]
    if op == "version":
        return {"wandb": wandb.__version__}
    if op == "init":
        return init(req)
    if run is None:
        raise RuntimeError(f"{op} before init")
    if op == "config":
        run.config.update(req["values"], allow_val_change=True)
    elif op == "log":
        run.log(req["values"], step=req["step"])
    elif op == "image":
        run.log({req["key"]: wandb.Image(req["path"])}, step=req.get("step"))
    elif op == "file":
        run.save(req["path"], base_path=req["base"], policy="now")
    elif op == "finish":
        run.finish(exit_code=req.get("exit_code", 0))
    else:
        raise RuntimeError(f"unknown request {op!r}")
    return {}


for line in sys.stdin:
    try:
        req = json.loads(line)
        if wandb is None:
            refuse(f"the wandb package is missing ({missing})")
            continue
        answer(**handle(req))
        if req["op"] == "finish":
            run = None
    except Exception as e:  # noqa: BLE001 (every failure is answered, the trainer decides)
        traceback.print_exc(file=sys.stderr)
        refuse(f"{type(e).__name__}: {e}")

if run is not None:
    run.finish(exit_code=1)
