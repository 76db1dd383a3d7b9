"""Leaderboards from one YAML file: models x datasets x seeds, each cell run once and kept as a
file, the board (means with 95% intervals, paired tests, a plot) built from those files."""
