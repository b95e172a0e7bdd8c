"""The environment a rank starts from: what it needs to run, and none of the server's secrets.

A rank gets an explicit environment (DESIGN.md, Secrets): this allow-list of the server's own
variables (where programs and libraries are, locale, the accelerators' settings), then the
platform's variables and the job's `env`. Everything else the server holds — cloud keys,
database URLs, tokens — stays with the server. Every engine builds its ranks' environment here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Exact names: finding programs and libraries, the user and locale, temporary space.
ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR",
})
# Prefixes: locale categories and the accelerator, communication and math-library settings an
# operator tunes per machine.
ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "NCCL_", "GLOO_", "OMP_", "MKL_", "OPENBLAS_")


def inherited(server_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's variables a rank may see (the allow-list above)."""
    env = os.environ if server_env is None else server_env
    return {k: v for k, v in env.items() if k in ALLOWED or k.startswith(ALLOWED_PREFIXES)}


def rank_environment(platform: Mapping[str, str], job: Mapping[str, str],
                     server_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of one rank: the allow-list, the job's env, then the platform's
    variables (rank, world, server address, credentials), which a job cannot override."""
    return {**inherited(server_env), **job, **platform}
