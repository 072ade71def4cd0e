"""NAS-Bench-Macro for evonas: a search-space plug-in found through the ``evonas.search_spaces`` entry point.

evonas never imports this package by name: ``pip install`` this folder and ``--space nbmacro``
works in every command.
"""
from __future__ import annotations

from evonas_nbmacro.space import NBMacroSpace

__all__ = ["NBMacroSpace"]
