"""Tools that measure gangd and are not part of it: the benchmark (`python -m tools.bench`) and the
chaos soak (`python -m tools.soak`). Run from the project's root; they are not in the wheel."""
