"""``compile: True``: a function compiled by ``torch.compile`` once per run, or run eagerly where that fails."""

import time
from logging import getLogger

import torch


class CompiledOrEager:
    """``function`` compiled with dynamic shapes (the numbers of rows and distinct items change
    every step, and must not recompile), its compile time logged once. Should compiling fail (no
    C++ compiler, an unsupported backend), one warning, and ``eager`` from then on: it computes
    the same. Calls for which ``use_eager(*args)`` holds run eagerly (a compiled graph
    specialises on sizes of 1, which would compile a second graph)."""

    def __init__(self, function, eager=None, name=None, use_eager=None):
        self.eager = eager or function
        self.name = name or getattr(function, "__name__", "a function")
        self.use_eager = use_eager
        self.compiled = torch.compile(function, dynamic=True)
        self.compile_seconds = None

    def __call__(self, *args, **kwargs):
        if self.compiled is None or (self.use_eager is not None and self.use_eager(*args)):
            return self.eager(*args, **kwargs)
        if self.compile_seconds is not None:
            return self.compiled(*args, **kwargs)
        started = time.perf_counter()
        try:
            result = self.compiled(*args, **kwargs)
        except Exception as error:  # the eager function computes the same
            self.compiled = None
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            getLogger().warning(f"compile: True could not compile {self.name} ({type(error).__name__}: {reason[:200]}); "
                                f"running it eagerly")
            return self.eager(*args, **kwargs)
        self.compile_seconds = time.perf_counter() - started
        getLogger().info(f"compile: compiled {self.name} in {self.compile_seconds:.1f} s")
        return result
