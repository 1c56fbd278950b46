"""Figures of trained agents: Q maps, rollouts, representations, learning curves and renders (`crl viz`)."""
