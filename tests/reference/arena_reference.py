"""Independent reference for `teddy arena`: Bradley-Terry ratings by the MM algorithm
(Zermelo 1929, Hunter 2004), not teddy's Newton iteration on the logistic regression.

Strengths pi_i with P(i beats j) = pi_i / (pi_i + pi_j); a tie is half a win for each
side. The MM update pi_i <- W_i / sum_j n_ij / (pi_i + pi_j) increases the likelihood
every step and converges to the same maximum-likelihood ratings. Ratings on the Elo
scale: R_i = 400 log10(pi_i), shifted to mean 1000.

Usage: arena_reference.py BATTLES.jsonl  -> prints {"model": rating, ...} as JSON.
"""
import json
import sys

import numpy as np


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    names = sorted({r["model_a"] for r in rows} | {r["model_b"] for r in rows})
    idx = {m: i for i, m in enumerate(names)}
    p = len(names)
    n = np.zeros((p, p))
    w = np.zeros(p)
    for r in rows:
        a, b = idx[r["model_a"]], idx[r["model_b"]]
        n[a, b] += 1
        n[b, a] += 1
        s = {"model_a": 1.0, "model_b": 0.0}.get(r["winner"], 0.5)
        w[a] += s
        w[b] += 1.0 - s
    pi = np.ones(p)
    for _ in range(1000000):
        denom = (n / (pi[:, None] + pi[None, :])).sum(axis=1)
        new = w / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(np.log(new) - np.log(pi))) < 1e-14:
            pi = new
            break
        pi = new
    r = 400.0 * np.log10(pi)
    r += 1000.0 - r.mean()
    print(json.dumps({m: float(r[i]) for i, m in enumerate(names)}))


if __name__ == "__main__":
    main()
