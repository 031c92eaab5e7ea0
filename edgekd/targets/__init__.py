"""Deployment targets, one package per target (DESIGN.md, "targets").

Only ``cuda_fused`` lives here so far; the registry of targets by name comes later.
"""
