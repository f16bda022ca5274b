"""The feeds that keep each process's in-process tier coherent with the shared one."""
