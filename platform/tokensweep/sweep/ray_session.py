"""Starting or joining Ray for a sweep, and what the cluster offers its trials."""

from __future__ import annotations

import logging
import os
import socket
import sys

import ray

from tokensweep.errors import SpecError
from tokensweep.spec import SweepSpec
from tokensweep.sweep.options import RunOptions


def ray_address(options: RunOptions) -> str:
    return options.address or os.environ.get("RAY_ADDRESS") or "local"


def starts_local_ray(options: RunOptions) -> bool:
    return ray_address(options) in ("local", "none")


def probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at a host:port address (ray.init retries long)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms: ray.init explains itself quickly
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise SpecError(f"--address {address}: nothing answers there ({err.strerror or err}); is the Ray head running?") from None


def init_ray(options: RunOptions) -> None:
    address = ray_address(options)
    if starts_local_ray(options):
        # RAY_AUTH_MODE was chosen before Ray was imported: see tokensweep.commands.run.choose_ray_auth
        ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        return
    probe(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise SpecError(f"--address {address}: cannot connect to a Ray cluster ({err})".replace("\n", " ")) from None


def resolve_gpus(spec: SweepSpec, options: RunOptions) -> SweepSpec:
    """gpus = "auto": one per trial when the cluster has GPUs, else none; a GPU nobody has: refused locally."""
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if spec.gpus is None:
        return spec.with_gpus(1.0 if cluster_gpus > 0 else 0.0)
    if spec.gpus > 0 and cluster_gpus == 0:
        if starts_local_ray(options):
            raise SpecError(f"resources.gpus = {spec.gpus:g}, but this machine has no GPU visible to Ray (use gpus = 0)")
        print(
            f"tokensweep run: note: resources.gpus = {spec.gpus:g} but the cluster has no GPU now; "
            "trials wait until an autoscaler adds GPU nodes",
            file=sys.stderr,
        )
    return spec


def warn_if_storage_is_not_shared(storage: str) -> None:
    if "://" not in storage and len([n for n in ray.nodes() if n.get("Alive")]) > 1:
        print(
            f"tokensweep run: note: --storage {storage} is a local path; with trials on several "
            "machines it must be a shared filesystem (NFS) or s3://...",
            file=sys.stderr,
        )
