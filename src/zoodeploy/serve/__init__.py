"""Serving with BentoML: the service (`zoodeploy.serve.service`) and model-store glue.

Importing this package does not import the service module, which decides what to serve the
moment it is imported (see `zoodeploy.serve.service`).
"""

from zoodeploy.serve.config import DEFAULT_ARTIFACT, ServeConfig, ServeConfigError, ort_threads
from zoodeploy.serve.served import (Plan, RequestError, ServedModel, essentials, images_to_tensor, made_for_gpu,
                                    provider_for, resources_for, run_options, tensor_input, top_k)
from zoodeploy.serve.store import Imported, import_artifact, stored_artifact

__all__ = ["DEFAULT_ARTIFACT", "Imported", "Plan", "RequestError", "ServeConfig", "ServeConfigError",
           "ServedModel", "essentials", "images_to_tensor", "import_artifact", "made_for_gpu", "ort_threads",
           "provider_for", "resources_for", "run_options", "stored_artifact", "tensor_input", "top_k"]
