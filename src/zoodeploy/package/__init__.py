"""Edge bundles: a variant, its card essentials and a runtime-only predictor that verifies itself."""

from zoodeploy.package.archive import safe_extract
from zoodeploy.package.bundle import Bundle, PackageConfig, TargetOutputs, package
from zoodeploy.package.verify import BundleReport, check_bundle_dir, verify_bundle

__all__ = ["Bundle", "BundleReport", "PackageConfig", "TargetOutputs", "check_bundle_dir", "package",
           "safe_extract", "verify_bundle"]
