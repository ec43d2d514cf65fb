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
        ray.init(address="local", num_cpus=options.num_cpus, num_gpus=options.num_gpus, include_dashboard=False,
                 logging_level=logging.WARNING)  # fmt: skip
        return
    probe(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise SpecError(f"--address {address}: cannot connect to a Ray cluster ({err})".replace("\n", " ")) from None


LEFTOVER_GRACE_S = 5.0  # for a local Ray's processes to end after ray.shutdown, before they are killed


def shutdown(options: RunOptions) -> None:
    """ray.shutdown(); a local Ray's processes that outlive it are then ended (end_processes)."""
    processes = own_processes() if starts_local_ray(options) else []
    ray.shutdown()
    end_processes(processes, LEFTOVER_GRACE_S)


def own_processes() -> list:
    """This process's descendants: a local Ray's (listed before Ray ends: its agents are its raylet's children)."""
    import psutil

    return psutil.Process().children(recursive=True)


def end_processes(processes: list, grace_s: float = 0.0) -> None:
    """Kill those of `processes` still alive after `grace_s`. A local Ray's agents (DashboardAgent,
    RuntimeEnvAgent) outlive a driver that ended without ray.shutdown, on their loopback ports, ignoring SIGTERM."""
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:  # ended meanwhile
            pass
    psutil.wait_procs(alive, timeout=5)


def local_cpus(options: RunOptions) -> int:
    """The CPUs a new local Ray offers: --num-cpus, else what this machine has."""
    return options.num_cpus or os.cpu_count() or 1


def check_cpus(spec: SweepSpec, options: RunOptions) -> None:
    """Before Ray starts: a trial asking more CPUs than a new local Ray has could never start (Tune
    would wait forever); refused in one line, as a GPU nobody has is."""
    if starts_local_ray(options) and spec.cpus > local_cpus(options):
        source = "--num-cpus" if options.num_cpus else "this machine's count"
        raise SpecError(
            f"resources.cpus = {spec.cpus:g} per trial, but the local Ray has {local_cpus(options)} CPU(s) ({source}): "
            "no trial could ever start; lower resources.cpus" + ("" if options.num_cpus else " or pass a larger --num-cpus")
        )


def largest_node_cpus() -> float:
    return max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)


def note_unschedulable(spec: SweepSpec, options: RunOptions) -> None:
    """After Ray starts: say what trials that fit no node now wait for (a trial's CPUs are on one node)."""
    largest = largest_node_cpus()
    if spec.cpus <= largest:
        return
    if starts_local_ray(options):  # Ray saw fewer CPUs than os.cpu_count() (a container's CPU limit)
        raise SpecError(f"resources.cpus = {spec.cpus:g} per trial, but the local Ray has {largest:g} CPU(s): no trial could ever start")
    print(
        f"tokensweep run: note: each trial needs resources.cpus = {spec.cpus:g} on one node, and the largest node of "
        f"the cluster has {largest:g} CPU(s) now; the trials wait until a node that large joins (an autoscaler "
        "adds one if the cluster has such a node type)",
        file=sys.stderr,
        flush=True,
    )


def resolve_gpus(spec: SweepSpec, options: RunOptions) -> SweepSpec:
    """gpus = "auto": one per trial when the cluster has GPUs, else none; a GPU nobody has: refused locally,
    and so are more GPUs per trial than the local Ray has (a cluster's trials wait for a node that large)."""
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if spec.gpus is None:
        return spec.with_gpus(1.0 if cluster_gpus > 0 else 0.0)
    largest = max((n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if 0 < largest < spec.gpus:
        if starts_local_ray(options):
            raise SpecError(f"resources.gpus = {spec.gpus:g} per trial, but the local Ray has {largest:g} GPU(s): "
                            "no trial could ever start; lower resources.gpus")  # fmt: skip
        print(
            f"tokensweep run: note: each trial needs resources.gpus = {spec.gpus:g} on one node, and the largest node "
            f"of the cluster has {largest:g} GPU(s) now; the trials wait until a node that large joins",
            file=sys.stderr,
            flush=True,
        )
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
