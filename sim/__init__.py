"""World physics and the run: Earth model and frames, gravity, atmosphere, missiles, trajectories, scenario schema, engine, CLI."""
__version__ = "0.1.0"
