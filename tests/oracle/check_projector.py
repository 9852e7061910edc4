"""Oracle for tests/explain_cli.rs: TensorBoard's own projector plugin serves the embeddings that
`microvision explain` wrote for the run in RUN_DIR (its tensor, metadata and sprite routes).

usage: check_projector.py RUN_DIR
Exits 1 naming what TensorBoard could not read or what differs from explain/embeddings.safetensors.
"""
import sys
from urllib.parse import quote

import numpy as np
from safetensors.numpy import load_file
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
from werkzeug import Response
from werkzeug.test import Client

logdir = sys.argv[1]
mux = plugin_event_multiplexer.EventMultiplexer()
mux.AddRunsFromDirectory(logdir)
mux.Reload()
plugin = ProjectorPlugin(base_plugin.TBContext(logdir=logdir, multiplexer=mux))
apps = plugin.get_plugin_apps()


def get(route, **query):
    qs = "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    r = Client(apps[route], Response).get(f"{route}?{qs}")
    if r.status_code != 200:
        sys.exit(f"{route} {query}: HTTP {r.status_code}: {r.get_data(as_text=True)[:300]}")
    return r


runs = get("/runs").json
if not runs:
    sys.exit(f"the projector found no run with embeddings in {logdir}")
run = runs[0]
info = get("/info", run=run).json
emb = info["embeddings"][0]
name = emb["tensorName"]
ours = load_file(f"{logdir}/explain/embeddings.safetensors")
features = ours["features"]
served = np.frombuffer(get("/tensor", run=run, name=name).data, dtype=np.float32).reshape(features.shape)
diff = np.abs(served - features).max()
meta = get("/metadata", run=run, name=name).get_data(as_text=True).strip().split("\n")
sprite = get("/sprite_image", run=run, name=name).data
print(f"run {run!r}, tensor {name!r} {list(emb['tensorShape'])}, max |diff| {diff:.3g}, "
      f"{len(meta) - 1} metadata rows ({meta[0]!r}), sprite {len(sprite)} bytes")
if list(emb["tensorShape"]) != list(features.shape) or diff > 1e-5:
    sys.exit("the served tensor differs from the embeddings")
if meta[0] != "label\tpredicted\tcorrect" or len(meta) - 1 != len(features):
    sys.exit("metadata: expected a header and one row per point")
if not sprite.startswith(b"\x89PNG"):
    sys.exit("the sprite is not a PNG")
