"""Connecting to Ray: the one place that imports it, starts a local cluster or joins one.

Every scale-out runner (intent generation, knowledge-base embeddings, AIR features) takes an
``address``: ``"local"`` starts an in-process cluster on this machine's cores (``num_cpus``
caps it), anything else is passed to :func:`ray.init` (``"auto"``, ``"ray://host:10001"``).
Ray is an optional extra (``pip install "airrec[ray]"``); without it the runners raise a
:class:`~airrec.errors.ConfigError` that says so, never an ``ImportError`` from deep inside.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airrec.errors import ConfigError

__all__ = ["LOCAL", "connect", "import_ray"]

LOCAL = "local"
log = logging.getLogger(__name__)


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` naming the extra to install."""
    try:
        import ray
        import ray.data  # Ray Data is what the runners use
    except ImportError as e:
        raise ConfigError(f"Ray is not installed ({e}): pip install 'airrec[ray]'") from None
    return ray


def connect(address: str, *, num_cpus: int | None = None) -> Any:
    """Joins (or starts, for ``"local"``) the cluster at ``address``; returns ``ray``.

    Already connected: kept as is (a driver that called :func:`ray.init` itself chooses the
    cluster). A local cluster runs no dashboard and ships this process's environment
    variables to its workers (they import the same airrec).
    """
    if not isinstance(address, str) or not address:
        raise ConfigError(f"ray address must be 'local' or a cluster address, got {address!r}")
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address == LOCAL:
        cpus = num_cpus or os.cpu_count() or 1
        log.info("starting a local Ray cluster with %d CPUs", cpus)
        # Ray nices its workers (15) by default: on a machine doing anything else the actors,
        # which here do all the work, starved (a 24-item run took 10x longer beside training).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": _worker_env()})
    else:
        if num_cpus is not None:
            raise ConfigError("num_cpus applies to a local cluster only; a cluster has its own")
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    return ray


def _worker_env() -> dict[str, str]:
    """What local workers need to import this airrec and its offline models."""
    from airrec.generate.models import CACHE_ENV as MODEL_CACHE_ENV

    keep = ("PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "AIRREC_DATA_HOME", MODEL_CACHE_ENV)
    return {k: os.environ[k] for k in keep if k in os.environ}
