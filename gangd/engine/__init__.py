"""The job engine: a typed plan per recipe, one engine that runs it, recovery, diagnosis, fuses."""
