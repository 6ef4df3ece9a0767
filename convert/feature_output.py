"""The age model's pooled features as a second output of its .tflite file.

The box tells one buyer from the next by how a face looks (edge/tracking.py). Its small image
descriptor lets look-alikes through; the age model's own features, the tensor that feeds the final
fully connected layer, see the face the way the model does, and the two together halve the
look-alikes that pass (`benchmarks/separation_probe.py`). Exposing that tensor as an extra graph
output costs nothing at run time (it is computed anyway; measured on the shipped model: same
latency, byte-identical age output) and needs no retraining: the file is edited, not reconverted,
so the shipped default model gained it without touching its weights.

    python -m agegate.convert.feature_output MODEL.tflite OUT.tflite

`agegate convert` adds it to every model it writes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from agegate.edge.errors import ModelError

#: Name given to the added output (the runtime finds it by its width, not by name; the name is for people).
FEATURES_OUTPUT = "features"


def with_feature_output(blob: bytes) -> bytes:
    """A .tflite flatbuffer -> the same model with the input of its last FULLY_CONNECTED op as a
    second output (unchanged when it already is one)."""
    from agegate.train.tfenv import import_tf

    import_tf()  # the schema modules ship with TensorFlow; import it the project's way (quiet, legacy Keras)
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    graph = model.subgraphs[0]
    fc = [op for op in graph.operators
          if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED]
    if not fc:
        raise ModelError("no FULLY_CONNECTED op in this model: it has no pooled features to expose")
    feature = int(fc[-1].inputs[0])
    outputs = [int(i) for i in graph.outputs]
    if feature in outputs:
        return blob
    graph.outputs = np.array(outputs + [feature], dtype=np.int32)
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            t = schema.TensorMapT()
            t.name, t.tensorIndex = FEATURES_OUTPUT, feature
            sig.outputs = list(sig.outputs or []) + [t]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def add_feature_output(src: Path, out: Path) -> None:
    """Write `src` with the features output to `out` (atomically), with a copy of its sidecar."""
    from agegate.edge.metadata import read_metadata, write_metadata

    meta = read_metadata(src)
    blob = with_feature_output(Path(src).read_bytes())
    tmp = Path(out).with_suffix(".tflite.tmp")
    tmp.write_bytes(blob)
    tmp.replace(out)
    if Path(out).resolve() != Path(src).resolve():
        write_metadata(out, meta)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m agegate.convert.feature_output MODEL.tflite OUT.tflite")
    add_feature_output(Path(sys.argv[1]), Path(sys.argv[2]))
