"""Hypothesis profiles of the property tests: a short one for `make test`, a long one for `make soak`
(selected with BCSYNC_HYPOTHESIS_PROFILE=soak)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# derandomized: `make test` tries the same histories every time (the soak profile draws new ones)
settings.register_profile("convergence", max_examples=6, stateful_step_count=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("soak", max_examples=100, stateful_step_count=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
PROFILE = os.environ.get("BCSYNC_HYPOTHESIS_PROFILE", "convergence")
