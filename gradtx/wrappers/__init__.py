"""Wrappers: transformations that run another one differently (inject_hyperparams,
MultiSteps, conditionals, lookahead, schedule-free, plateau, monitoring,
microbatch).
"""
