"""Run directories, manifests, checkpoints and atomic writes."""
from edgekd.runs.atomic import atomic_path, replace_dir, save_torch, sha256_file, write_bytes, write_json, write_text
from edgekd.runs.rundir import RunDir, package_versions, write_manifest

__all__ = ["RunDir", "atomic_path", "package_versions", "replace_dir", "save_torch", "sha256_file", "write_bytes",
           "write_json", "write_manifest", "write_text"]
