"""mediamon: media monitoring on Apache Beam (driver side: config, I/O, graph, CLI)."""
