"""The export formats, one module each: a module-level `Format` in a module here is registered.

Adding a format = one module in this folder (and its tests); `registry.FORMATS` finds it.
"""
