"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

from tune_app.search import RAY_ENV


@pytest.fixture(scope="module")
def local_ray():
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
