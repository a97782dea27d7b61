"""Gradient clipping and Adam on flat parameter vectors."""

from dataclasses import dataclass

import numpy as np


def clip_by_global_norm(gradient: np.ndarray, max_norm: float) -> tuple[np.ndarray, float]:
    """The gradient scaled down to Euclidean norm `max_norm` if longer, and its norm before."""
    norm = float(np.linalg.norm(gradient))
    if norm > max_norm:
        return gradient * (max_norm / norm), norm
    return gradient, norm


@dataclass(frozen=True)
class AdamState:
    """Adam's running moments and its step count: all an interrupted run needs to continue."""

    first_moment: np.ndarray
    second_moment: np.ndarray
    count: int


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, as pure functions of an `AdamState`."""

    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, params: np.ndarray) -> AdamState:
        """Zero moments for `params`."""
        return AdamState(np.zeros_like(params), np.zeros_like(params), 0)

    def update(
        self, params: np.ndarray, gradient: np.ndarray, state: AdamState
    ) -> tuple[np.ndarray, AdamState]:
        """One step against `gradient`: the new parameters and state."""
        count = state.count + 1
        first = self.beta1 * state.first_moment + (1 - self.beta1) * gradient
        second = self.beta2 * state.second_moment + (1 - self.beta2) * gradient**2
        corrected_first = first / (1 - self.beta1**count)
        corrected_second = second / (1 - self.beta2**count)
        params = params - self.learning_rate * corrected_first / (np.sqrt(corrected_second) + self.eps)
        return params, AdamState(first, second, count)
