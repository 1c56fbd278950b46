"""crl: contrastive goal-conditioned RL with deep residual networks, in JAX."""
from crl import _platform

_platform.append_xla_flags()  # must precede the first `import jax` anywhere in the process
_platform.default_gl_backend()  # must precede the first `import mujoco`

__version__ = "0.1.0"
