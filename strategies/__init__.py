"""Execution algorithms: events in, order actions out; the same code live, on the sim venue and in replay."""
