"""`invoke demo`: the pipeline on this machine, fed with real historical prices."""
