"""A TEST-ONLY stand-in for Triton's C++ onnxruntime backend, run by Triton's Python backend.

Not a product path: zoodeploy's repositories are meant for Triton images that ship the real
onnxruntime backend. No registry here ships that backend, but NVIDIA's PyTriton wheel ships a real
`tritonserver` with the Python backend, and Triton maps `platform: "onnxruntime_onnx"` to a backend
named `onnxruntime`: finding no libtriton_onnxruntime.so in `<backend-directory>/onnxruntime/`, it
runs this file there through the Python backend. So the real server loads the repository
`zoodeploy package --format triton` writes unmodified; Triton's core still does what a client sees
of the config (labels and the classification extension, warm-up, dynamic batching, statistics).

What it does, as the real backend would: ONNX Runtime (CPU) on `<version>/<default_model_filename
or model.onnx>`; at load, the config's inputs and outputs checked against the graph (names, element
types, dims; a failure refuses the model with the reason); each batch Triton's dynamic batcher
forms runs as ONE session call (the requests' rows concatenated, the outputs split back).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

ONNX_TYPES = {"TYPE_FP32": "tensor(float)", "TYPE_FP16": "tensor(float16)", "TYPE_INT64": "tensor(int64)",
              "TYPE_INT32": "tensor(int32)", "TYPE_UINT8": "tensor(uint8)", "TYPE_INT8": "tensor(int8)"}


def _check(config, graph, what):
    """Every tensor the config names exists in the graph with its element type and dims."""
    batched = config.get("max_batch_size", 0) > 0
    by_name = {t.name: t for t in graph}
    for entry in config.get(what, []):
        name = entry["name"]
        if name not in by_name:
            raise pb_utils.TritonModelException(
                f"unexpected {what} '{name}' in model configuration; the model has {sorted(by_name)}")
        tensor, want = by_name[name], ONNX_TYPES.get(entry["data_type"])
        if tensor.type != want:
            raise pb_utils.TritonModelException(
                f"{what} '{name}' is {tensor.type} in the model, {entry['data_type']} in the configuration")
        dims = [int(d) for d in entry["dims"]]
        shape = tensor.shape[1:] if batched else tensor.shape
        model_dims = [d if isinstance(d, int) else -1 for d in shape]
        if len(dims) != len(model_dims) or any(m != -1 and c != -1 and m != c for m, c in zip(model_dims, dims)):
            raise pb_utils.TritonModelException(
                f"{what} '{name}' dims {dims} in the configuration do not match the model's {model_dims}"
                + (" (the batch dimension excluded: max_batch_size > 0)" if batched else ""))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"],
                            config.get("default_model_filename") or "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # tests share few cores; one instance, one thread
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        _check(config, self.session.get_inputs(), "input")
        _check(config, self.session.get_outputs(), "output")
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        rows = [len(f[self.inputs[0]]) for f in feeds]
        batch = {n: np.concatenate([f[n] for f in feeds]) for n in self.inputs}
        results = self.session.run(self.outputs, batch)
        responses, start = [], 0
        for count in rows:
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(r[start:start + count]))
                       for n, r in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += count
        return responses

    def finalize(self):
        self.session = None
