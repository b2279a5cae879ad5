"""``tapeshot chaos``: the fault drill. A sim venue and the engine run as separate processes; every run sends a
random intent, injects a random fault, restarts the engine where the fault killed it, waits for the intent to
settle and checks the journal (through ``tapeshot journal export``) against the venue (through REST only).

Modules: ``procs`` (the two processes), ``venue`` (the venue's REST view and its fault switch), ``checks`` (what
must hold), ``faults`` (the catalogue), ``drill`` (the loop, the run lines and the summary).
"""
