"""The benchmark: gangd against the physical floor, its parallel scaling, and today's tools."""
