"""Statistical checks shared by the tests (sampling laws of buffers and environments)."""
import math

import numpy as np

CHI2_SIGMAS = 6.0  # reject a chi-square statistic above df + 6 * sqrt(2 df) (normal approx.)


def chi2_ok(counts, probs):
    """Pearson chi-square of observed counts vs exact probabilities, with a conservative bound."""
    counts, probs = np.asarray(counts, float), np.asarray(probs, float)
    n = counts.sum()
    keep = probs > 0
    assert counts[~keep].sum() == 0, "observed an outcome of probability zero"
    stat = ((counts[keep] - n * probs[keep]) ** 2 / (n * probs[keep])).sum()
    df = keep.sum() - 1
    return stat <= df + CHI2_SIGMAS * math.sqrt(2 * max(df, 1)), stat
