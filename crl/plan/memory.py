"""Memory of a run without allocating it: the abstract training state and XLA's analysis of the compiled programs."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax

from crl.checkpoint import tree_nbytes
from crl.programs import Programs

COMPILED_PROGRAMS = ("prefill", "epoch", "evaluate")  # compiled ahead of time by Programs.compile


@dataclasses.dataclass(frozen=True)
class StateBytes:
    """Bytes of the training state's parts (all seeds, all devices)."""

    params: int  # online and target networks
    optimiser: int
    buffer: int
    env_state: int
    other: int  # log_alpha, RNG key, counters

    @property
    def total(self) -> int:
        return self.params + self.optimiser + self.buffer + self.env_state + self.other


def state_bytes(state: Any) -> StateBytes:
    """Split a (possibly abstract) TrainingState into params / optimiser / buffer / env-state bytes."""
    params = tree_nbytes((state.actor_params, state.critic_params, state.target_params))
    optimiser = tree_nbytes((state.actor_opt_state, state.critic_opt_state, state.alpha_opt_state))
    buffer, env = tree_nbytes(state.buffer), tree_nbytes(state.env_state)
    return StateBytes(params=params, optimiser=optimiser, buffer=buffer, env_state=env,
                      other=tree_nbytes(state) - params - optimiser - buffer - env)


@dataclasses.dataclass(frozen=True)
class ProgramMemory:
    """XLA's buffer assignment for one compiled program (bytes per device)."""

    argument: int
    output: int
    alias: int  # output bytes that reuse donated argument buffers
    temp: int

    @property
    def peak(self) -> int:
        """Live bytes while the program runs: its arguments, its new outputs and its temporaries."""
        return self.argument + self.output - self.alias + self.temp


def program_memory(compiled: Any) -> ProgramMemory:
    stats = compiled.memory_analysis()
    return ProgramMemory(argument=stats.argument_size_in_bytes, output=stats.output_size_in_bytes,
                         alias=stats.alias_size_in_bytes, temp=stats.temp_size_in_bytes)


def abstract_state(programs: Programs) -> Any:
    """The training state as ShapeDtypeStructs with their shardings (init is traced, never run)."""
    return jax.eval_shape(programs.init)


def memories(compiled: Programs) -> dict[str, ProgramMemory]:
    return {name: program_memory(getattr(compiled, name)) for name in COMPILED_PROGRAMS}


def peak_bytes(programs: dict[str, ProgramMemory]) -> int:
    """Peak live bytes of training per device: the largest program, counting the state live around `evaluate`.

    prefill and epoch take the state (donated) as their argument; evaluate takes only the actor params
    while the whole state (epoch's argument) stays alive, so its peak is the state plus its outputs and temps.
    """
    evaluate, live_state = programs["evaluate"], programs["epoch"].argument
    return max(programs["prefill"].peak, programs["epoch"].peak, live_state + evaluate.output + evaluate.temp)
