"""Benchmarks: ``glm bench fewshot`` (:mod:`glm.bench.fewshot`) and ``glm bench generation``
(:mod:`glm.bench.generation`). Their rows are the classical baselines plus every registered method's
(:func:`glm.bench.fewshot.all_rows`); they run the same pipeline as the training commands."""
