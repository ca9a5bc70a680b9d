"""Engines: opt-in ways of running an optimizer faster (packing small leaves into
buffers, the fused step, the native Adam kernel). They read properties the
transformations carry; nothing below this package knows that it exists.
"""
