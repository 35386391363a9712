"""The scenario catalogue: one scenario and its test per module (``serve_chaos.scenarios``).

Scenario modules import each other relatively: pytest collects this folder as ``scenarios`` (its
rootdir name) while the catalogue imports it as ``serve_chaos.scenarios``, and a relative import
keeps each of them to one copy of every module.
"""
