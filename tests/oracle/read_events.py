"""Oracle for tests/track_tensorboard.rs: reads a run directory's event files with TensorBoard's
own loader and prints {"scalars": {tag: [[step, value], ...]}, "text": {tag: str},
"images": {tag: [width, height, png_bytes_md5]}} as JSON."""
import hashlib
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]}
text = {}
for t in tags.get("tensors", []):
    event = acc.Tensors(t)[0]
    text[t] = event.tensor_proto.string_val[0].decode()
images = {}
for t in tags.get("images", []):
    img = acc.Images(t)[-1]
    images[t] = [img.width, img.height, hashlib.md5(img.encoded_image_string).hexdigest()]
print(json.dumps({"scalars": scalars, "text": text, "images": images}))
