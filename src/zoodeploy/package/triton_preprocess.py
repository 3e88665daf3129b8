"""Triton Python-backend model: encoded image bytes in, the classifier's input tensor out.

`zoodeploy package --format triton --input image` copies this file to `<model>_preprocess/1/model.py`,
beside a verbatim copy of zoodeploy's preprocess.py (the one edge bundles carry) and the card's
preprocessing record; Triton runs it in its Python backend (it needs numpy and Pillow there), and
the ensemble `<model>_image` feeds its output to the classifier. Not imported by zoodeploy itself.

Each request's `image` is a BYTES tensor [n, 1]: one encoded image (PNG, JPEG, anything Pillow
decodes) per row. A request with an image that cannot be decoded gets an INVALID_ARG error (HTTP
400) naming the row; the other requests of the batch are answered as usual.
"""

import json
import os
import sys

import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # preprocess.py beside this file (the Python backend does not put it on the path)

from preprocess import Preprocessing, load_image, preprocess_batch  # noqa: E402

RECORD = "preprocessing.json"  # in the version folder, beside this file


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        with open(os.path.join(HERE, RECORD)) as f:
            self.prep = Preprocessing.from_dict(json.load(f)["preprocessing"])

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        blobs = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy().reshape(-1)
        images = []
        for i, blob in enumerate(blobs):
            try:
                images.append(load_image(bytes(blob)))
            except Exception as e:  # preprocess.ImageError, and whatever else a decoder raises
                return pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"image {i} of the request: {e}", pb_utils.TritonError.INVALID_ARG))
        x = preprocess_batch(images, self.prep)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, x)])
