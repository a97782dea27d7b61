"""Gradient clipping and Adam on flat parameter vectors."""

import numpy as np


def clip_by_global_norm(gradient: np.ndarray, max_norm: float) -> tuple[np.ndarray, float]:
    """The gradient scaled down to Euclidean norm `max_norm` if longer, and its norm before."""
    norm = float(np.linalg.norm(gradient))
    if norm > max_norm:
        return gradient * (max_norm / norm), norm
    return gradient, norm


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction; `update` returns the new parameters."""

    def __init__(self, learning_rate: float, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.first_moment: np.ndarray | None = None
        self.second_moment: np.ndarray | None = None
        self.count = 0

    def update(self, params: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """One step against `gradient`."""
        if self.first_moment is None:
            self.first_moment = np.zeros_like(params)
            self.second_moment = np.zeros_like(params)
        self.count += 1
        self.first_moment = self.beta1 * self.first_moment + (1 - self.beta1) * gradient
        self.second_moment = self.beta2 * self.second_moment + (1 - self.beta2) * gradient**2
        first = self.first_moment / (1 - self.beta1**self.count)
        second = self.second_moment / (1 - self.beta2**self.count)
        return params - self.learning_rate * first / (np.sqrt(second) + self.eps)
