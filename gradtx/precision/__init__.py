"""Precision: compensated (Kahan) and stochastically rounded updates of
low-precision parameters, and 8-bit optimizer state.
"""
